"""Views that trust the gateway for identity: Django sees the injected ``X-User-Id`` as
``request.headers["X-User-Id"]`` (``META["HTTP_X_USER_ID"]``)."""

from __future__ import annotations

from django.http import JsonResponse


def me(request):
    """Who the gateway says the caller is."""
    return JsonResponse({
        "user": request.headers.get("X-User-Id"),
        "scopes": request.headers.get("X-User-Scopes", ""),
        "saw_authorization": "Authorization" in request.headers,
    })


def hello(request):
    """An anonymous route (keyless in gateway.yaml)."""
    return JsonResponse({"hello": "world", "user": request.headers.get("X-User-Id")})
