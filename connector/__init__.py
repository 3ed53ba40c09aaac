"""The municipality's connector node. It talks to the registry and to other connectors only
over the wire and never imports ``registry``."""
