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


def test_ids_are_never_handed_out_twice_and_a_forked_child_draws_its_own():
    import os

    from wsgi_gateway.requestid import new_request_id, random_hex

    seen = {new_request_id() for _ in range(1000)} | {random_hex(8) for _ in range(1000)}
    assert len(seen) == 2000 and all(len(i) in (32, 16) for i in seen)
    parent_next = new_request_id()  # the pool now holds bytes a child must not reuse
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ID, then exit without running pytest's teardown
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read), os.close(write)
    assert len(child) == 32 and child not in seen | {parent_next, new_request_id()}
