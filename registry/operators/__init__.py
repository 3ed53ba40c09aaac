"""Who operates the registry, and what they did: operator accounts (argon2-hashed passwords,
roles ``admin`` and ``auditor``), API keys for operators and participants (stored as SHA-256
hashes only), the append-only audit log of admin actions, and ``AdminService``: the admin
actions the CLI and the HTTP admin API both call, each written to the audit log.

``RegistryAuthenticator`` turns an HTTP request's ``Authorization`` header into a
``mesh.http_auth.Principal`` for the doors of ``registry/http_api.py`` and
``registry/admin_api.py``; docs/security.md describes every credential.
"""
