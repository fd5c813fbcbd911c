# A single OpenBao node on integrated storage: after every restart it is sealed until unsealed.
storage "raft" {
  path    = "/var/lib/openbao"
  node_id = "vml-vault-restarts-raft"
}

listener "tcp" {
  address     = "127.0.0.1:8200"
  tls_disable = true
}

api_addr     = "http://127.0.0.1:8200"
cluster_addr = "http://127.0.0.1:8201"
