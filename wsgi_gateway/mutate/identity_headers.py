"""The well-known identity and proxy headers no client may hand an upstream.

Upstream apps behind other gateways and auth proxies are often written to believe these
names; an app moved behind this gateway, or sharing a host with one that sets them,
must never receive a client's copy. A name ending in ``*`` is a prefix (a family).

Sources, each checked against the product's documentation of what it sets upstream:

- oauth2-proxy: ``X-Forwarded-User``, ``-Email``, ``-Preferred-Username``, ``-Groups``,
  ``-Access-Token``; ``X-Auth-Request-User``, ``-Email``, ``-Preferred-Username``,
  ``-Groups``, ``-Access-Token``; ``Gap-Auth``.
- Kong: ``X-Consumer-Id``, ``-Custom-Id``, ``-Username``, ``-Groups``;
  ``X-Credential-Identifier``, ``X-Credential-Username``, ``X-Anonymous-Consumer``;
  ``X-Authenticated-Userid``, ``-Scope``, ``-Groups``; ``X-Userinfo``, ``X-Id-Token``,
  ``X-Access-Token`` (openid-connect).
- Tyk sets none by default; operators inject claims under names of their choosing
  (list those under ``client_headers.strip``).
- mod_auth_openidc: ``OIDC_CLAIM_*`` (its default claim prefix), ``OIDC_access_token``,
  ``OIDC_access_token_expires``, ``OIDC_id_token``, ``OIDC_id_token_payload``,
  ``OIDC_userinfo_json`` (all under ``OIDC-*``: WSGI spells ``-`` and ``_`` alike).
- Web servers and TLS terminators: ``Remote-User`` (CGI), ``X-Remote-User``,
  ``X-Remote-Group``, ``X-Remote-Extra-*`` (Kubernetes auth proxy), ``X-Client-Cert``,
  ``X-Client-Verify``, ``X-Client-Dn``, ``X-SSL-Client-*``, ``SSL-Client-*``,
  ``X-Forwarded-Client-Cert`` (Envoy, Istio).
- Common conventions: ``X-User``, ``X-User-Id``, ``X-User-Email``, ``X-Email``,
  ``X-Username``, ``X-Auth-User``, ``X-WebAuth-User`` (Grafana auth proxy),
  ``Remote-Groups``, ``Remote-Email``, ``Remote-Name`` (Authelia),
  ``X-Goog-Authenticated-User-*``, ``X-Goog-Iap-Jwt-Assertion`` (Google IAP),
  ``X-Amzn-Oidc-*`` (AWS ALB), ``Cf-Access-*`` (Cloudflare Access),
  ``X-Pomerium-*`` (Pomerium).
"""

from __future__ import annotations

DEFAULT_IDENTITY_HEADERS: tuple[str, ...] = (
    # web servers, generic conventions
    "Remote-User", "Remote-Groups", "Remote-Email", "Remote-Name",
    "X-Remote-User", "X-Remote-Group", "X-Remote-Extra-*",
    "X-User", "X-User-Id", "X-User-Email", "X-Email", "X-Username", "X-Auth-User",
    "X-WebAuth-User",
    # oauth2-proxy
    "X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Preferred-Username",
    "X-Forwarded-Groups", "X-Forwarded-Access-Token",
    "X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Preferred-Username",
    "X-Auth-Request-Groups", "X-Auth-Request-Access-Token", "Gap-Auth",
    # Kong
    "X-Consumer-Id", "X-Consumer-Custom-Id", "X-Consumer-Username", "X-Consumer-Groups",
    "X-Credential-Identifier", "X-Credential-Username", "X-Anonymous-Consumer",
    "X-Authenticated-Userid", "X-Authenticated-Scope", "X-Authenticated-Groups",
    "X-Userinfo", "X-Id-Token", "X-Access-Token",
    # mod_auth_openidc
    "OIDC-*",
    # client certificates from TLS terminators
    "X-Client-Cert", "X-Client-Verify", "X-Client-Dn", "X-SSL-Client-*", "SSL-Client-*",
    "X-Forwarded-Client-Cert",
    # cloud identity-aware proxies
    "X-Goog-Authenticated-User-*", "X-Goog-Iap-Jwt-Assertion", "X-Amzn-Oidc-*",
    "Cf-Access-*", "X-Pomerium-*",
)
"""Removed from every client request unless ``client_headers.strip_defaults`` is false."""

PROXY_HEADERS: tuple[str, ...] = (
    "Forwarded", "X-Forwarded-*", "X-Real-Ip", "True-Client-Ip", "X-Client-Ip",
    "X-Cluster-Client-Ip", "X-Original-Forwarded-For", "X-Original-Url", "X-Rewrite-Url",
)
"""What a proxy says about the client (address, scheme, host, original URL): removed
unless the peer (``REMOTE_ADDR``) is one of ``client_headers.trusted_proxies``."""
