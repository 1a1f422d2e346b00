"""The per-request context: the request view layers share."""

from __future__ import annotations

from werkzeug.test import EnvironBuilder

from wsgi_gateway.context import RequestContext


def test_the_request_is_parsed_only_when_a_layer_reads_more_than_the_environ():
    environ = EnvironBuilder("/a?x=1", headers={"X-One": "1"}).get_environ()
    ctx = RequestContext(request_id="r")
    request = ctx.request(environ)
    assert request.environ is environ and ctx.request(environ) is request
    assert request._request is None  # a bearer token or a cached decision reads no more
    assert request.args["x"] == "1" and request.headers["X-One"] == "1"
    assert request.werkzeug() is request._request is not None


def test_attributes_set_on_the_request_reach_werkzeugs():
    request = RequestContext(request_id="r").request(EnvironBuilder("/").get_environ())
    request.max_content_length = 5  # what a body-reading method sets before get_data
    assert request.werkzeug().max_content_length == 5
