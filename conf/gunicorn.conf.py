# gunicorn settings for operators who run gunicorn themselves instead of
# `wsgi-gateway serve` (which takes the same settings from the config's `server:`).
#
#   gunicorn -c conf/gunicorn.conf.py 'wsgi_gateway:from_config("conf/demo.yaml")'
#
# from_config() loads and builds the gateway in each worker, after the fork, so no
# socket or memcached connection is shared between workers; the config's `server:`
# section is ignored: this file rules. Values below are the gateway's own defaults,
# overridable from the environment without editing the file.
import os

bind = os.environ.get("GATEWAY_BIND", "127.0.0.1:8000").split(",")
# With the memory store each worker counts limits and keeps sessions alone
# (`wsgi-gateway check` warns); with memcached, add workers for throughput.
workers = int(os.environ.get("GATEWAY_WORKERS", "2"))
worker_class = "sync"   # best tail for this CPU-bound middleware: gthread (4 threads, keep-alive)
                        # spent ~10 % less CPU a request but its p99 was 2-6x sync's (README)
timeout = 30            # a sync worker holds one request: bound what a slow client costs
graceful_timeout = 20
keepalive = 5
limit_request_line = 8190
limit_request_fields = 100
# gunicorn >= 25 opens a control socket at one fixed path per user: two gateways on a
# host would collide. Off, as `wsgi-gateway serve` does by default.
control_socket_disable = True
# X-Forwarded-* is trusted only from these proxy addresses (comma-separated).
forwarded_allow_ips = os.environ.get("GATEWAY_TRUSTED_PROXIES", "127.0.0.1")


def post_worker_init(worker):
    """Once the worker has built the gateway: freeze its start-up heap out of the garbage
    collector's walks; full collections then run only from post_request below
    (wsgi_gateway/runtime.py: they had stalled requests for 57-85 ms)."""
    from wsgi_gateway.runtime import tune_gc

    tune_gc()


def post_request(worker, req, environ, resp):
    """Every 100 requests, after the response: a full collection of what is not frozen."""
    from wsgi_gateway.runtime import after_request

    after_request()
