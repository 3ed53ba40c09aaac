"""The resident portal (住民ポータル) at ``/portal/`` of the connector of the resident's platform.

A resident signs in through the platform's OpenID provider (``oidc.py``: authorization code
with PKCE, state and nonce, the ID token's signature and claims verified) and then sees and
changes only their own data: 「わたしのデータ」 (personal datasets holding records about them),
「どこに提供されたか」 (the flow ledger), 「同意の管理」 (grant, change, withdraw, each confirmed
and kept as evidence by the consent store; the history) and 「ID連携」 (ids of other platforms
linked to them, with their assurance levels; unlink). The resident id always comes from the
session (``Principal(RESIDENT, id, credential="session")``, ``connector/credentials.py``),
never from a URL or a form field; a consent of someone else is "not found".

The shared bearer token of ``connector/portal_api.py`` (``DATA_DIR/portal.token``) remains
only for server-to-server integration: whoever holds it may act for any resident, so it never
belongs in a browser or in these pages.
"""

from connector.web.portal.site import add_portal_pages, setup_portal_site

__all__ = ["add_portal_pages", "setup_portal_site"]
