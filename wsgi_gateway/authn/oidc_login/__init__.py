"""Browser login: the gateway as an OpenID Connect relying party (Authorization Code +
PKCE), with server-side sessions in the store, refresh and logout. See ``method.py``."""
