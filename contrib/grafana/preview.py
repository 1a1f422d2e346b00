"""Renders docs/assets/grafana-preview.svg: four of the dashboard's panels from real data.

    .venv/bin/python contrib/grafana/preview.py [--seconds 40]

Starts the gateway under gunicorn (2 workers; JWT, a rule file, a rate-limited policy,
metrics on), drives a changing mix of allowed, denied, unauthenticated and limited
requests at it, scrapes /.gateway/metrics every second, and draws the same queries the
dashboard runs (request rate by decision, latency p50/p95/p99, matched deny rules,
rejections by policy) as an SVG, with no plotting library: what the README shows is
what the gateway exported.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.observe.support import observed_config, samples, write  # noqa: E402
from tests.support.gateways import SECRET_ENV, mint  # noqa: E402
from tests.support.processes import GatewayProcess  # noqa: E402

OUT = Path(__file__).resolve().parents[2] / "docs" / "assets" / "grafana-preview.svg"
COLOURS = ["#73bf69", "#f2cc0c", "#5794f2", "#ff7383", "#b877d9", "#ff9830"]


def traffic(url: str, stop: threading.Event, started: float) -> None:
    tokens = {s: mint(sub=s, scope="vip" if s == "boss" else "") for s in
              ["ann", "bob", "writer", "boss", "eve"]}
    session = requests.Session()
    while not stop.is_set():
        phase = (time.monotonic() - started) / 10  # the mix changes every 10 s
        method, who = random.choice([("GET", "ann"), ("GET", "bob"), ("POST", "writer"),
                                     ("GET", "boss"), ("DELETE", "bob"), ("POST", "ann"),
                                     ("GET", None), ("GET", "eve")][: 5 + int(phase) % 4])
        headers = {"Authorization": f"Bearer {tokens[who]}"} if who else {}
        try:
            session.request(method, url + "/api/orders", headers=headers, timeout=5)
        except requests.RequestException:
            pass
        time.sleep(0.004 * (1 + int(phase) % 3))


def quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' histogram_quantile over cumulative (le, count) pairs."""
    total = buckets[-1][1]
    if total <= 0:
        return 0.0
    rank, lower, below = q * total, 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return lower
            return lower + (le - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = le, count
    return lower


def series(scrapes: list[dict]) -> dict[str, dict[str, list[float]]]:
    """Per-second rates and quantiles between consecutive scrapes."""
    out: dict[str, dict[str, list[float]]] = {"rate by decision": {}, "latency (ms)": {},
                                               "deny rules matched /s": {}, "limited /s by policy": {}}
    for before, after in zip(scrapes, scrapes[1:]):
        def delta(name, key_label, **want):
            sums: dict[str, float] = {}
            for (n, labels), v in after.items():
                ls = dict(labels)
                if n == name and all(ls.get(k) == w for k, w in want.items()) and ls.get("api") == "api":
                    sums[ls[key_label]] = sums.get(ls[key_label], 0) + v - before.get((n, labels), 0)
            return sums
        for group, name, label, want in [
                ("rate by decision", "gateway_requests_total", "decision", {}),
                ("deny rules matched /s", "gateway_rule_outcomes_total", "rule", {"outcome": "true", "rule": "no-delete"}),
                ("limited /s by policy", "gateway_limit_rejections_total", "policy", {})]:
            for key, v in delta(name, label, **want).items():
                out[group].setdefault(key, []).append(v)
        buckets = sorted((float(dict(ls)["le"].replace("+Inf", "inf")), v - before.get((n, ls), 0))
                         for (n, ls), v in after.items()
                         if n == "gateway_request_duration_seconds_bucket" and dict(ls).get("api") == "api")
        for q in (0.5, 0.95, 0.99):
            out["latency (ms)"].setdefault(f"p{int(q * 100)}", []).append(1000 * quantile(q, buckets))
    return out


def svg(panels: dict[str, dict[str, list[float]]], seconds: int) -> str:
    width, height, pad = 980, 560, 14
    pw, ph = (width - 3 * pad) / 2, (height - 3 * pad - 30) / 2
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="#111217"/>',
             f'<text x="{pad}" y="22" fill="#ccccdc" font-size="15">wsgi-gateway: '
             f'{seconds} s of real traffic, 2 gunicorn workers (contrib/grafana/preview.py)</text>']
    for i, (title, lines) in enumerate(panels.items()):
        x0, y0 = pad + (i % 2) * (pw + pad), 30 + pad + (i // 2) * (ph + pad)
        parts.append(f'<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="#181b1f" stroke="#2c3235"/>')
        parts.append(f'<text x="{x0 + 8}" y="{y0 + 16}" fill="#ccccdc" font-size="12">{title}</text>')
        top = max([max(v) for v in lines.values() if v] + [1e-9]) * 1.1
        gx, gy, gw, gh = x0 + 40, y0 + 26, pw - 150, ph - 44
        for k in range(5):
            y = gy + gh - gh * k / 4
            parts.append(f'<line x1="{gx}" x2="{gx + gw}" y1="{y}" y2="{y}" stroke="#2c3235"/>'
                         f'<text x="{gx - 4}" y="{y + 3}" fill="#8e8e8e" text-anchor="end">{top * k / 4:.3g}</text>')
        for j, (name, values) in enumerate(sorted(lines.items())):
            colour = COLOURS[j % len(COLOURS)]
            n = max(len(values) - 1, 1)
            points = " ".join(f"{gx + gw * t / n:.1f},{gy + gh - gh * v / top:.1f}" for t, v in enumerate(values))
            parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
            parts.append(f'<text x="{gx + gw + 10}" y="{gy + 12 + 14 * j}" fill="{colour}">{name}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=40)
    args = parser.parse_args()
    os.environ.update(SECRET_ENV)
    workdir = Path(tempfile.mkdtemp(prefix="gw-preview-"))
    config = observed_config(workdir, None, audit={"enabled": False})
    config["policies"]["basic"] = {"rate": "20/10s"}
    process = GatewayProcess(write(workdir, config), workers=2, env=SECRET_ENV).start()
    stop, scrapes = threading.Event(), []
    started = time.monotonic()
    drivers = [threading.Thread(target=traffic, args=(process.url, stop, started)) for _ in range(3)]
    try:
        for driver in drivers:
            driver.start()
        for _ in range(args.seconds + 1):
            scrapes.append(samples(requests.get(process.url + "/.gateway/metrics", timeout=5).text))
            time.sleep(1)
    finally:
        stop.set()
        for driver in drivers:
            driver.join()
        process.stop()
    OUT.write_text(svg(series(scrapes), args.seconds))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
