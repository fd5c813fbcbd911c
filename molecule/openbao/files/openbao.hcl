# OpenBao on integrated storage, as it came from a Vault setup
storage "raft" {
  path    = "/var/lib/openbao"
  node_id = "vml-openbao"
}

listener "tcp" {
  address     = "127.0.0.1:8200"
  tls_disable = true
}

api_addr     = "http://127.0.0.1:8200"
cluster_addr = "http://127.0.0.1:8201"
disable_mlock = false
ui           = true
