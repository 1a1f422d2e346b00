"""JWT / OpenID Connect access tokens: providers, key sets, verification, identity."""
