# OpenBao 2 on integrated storage, as OpenBao documents it: no disable_mlock line (2.0 removed mlock).
storage "raft" {
  path    = "/var/lib/openbao"
  node_id = "vml-swap"
}

listener "tcp" {
  address     = "127.0.0.1:8200"
  tls_disable = true
}

api_addr     = "http://127.0.0.1:8200"
cluster_addr = "http://127.0.0.1:8201"
