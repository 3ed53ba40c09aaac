"""The operating organisation's registry: participants, the mesh CA, enrolment, revocation.

It talks to connectors only over the wire and never imports ``connector``.
"""
