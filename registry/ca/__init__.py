"""The mesh certificate authority: root key, node certificates, revocation lists."""
