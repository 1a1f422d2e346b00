"""The Grafana dashboard queries only metrics the gateway exports."""

from __future__ import annotations

import json
import re

from tests.support.processes import REPO

DASHBOARD = REPO / "contrib" / "grafana" / "wsgi-gateway.json"


def _exported() -> set[str]:
    source = (REPO / "wsgi_gateway" / "observe" / "metrics.py").read_text()
    names = set()
    for family in re.findall(r'(?:counter|histogram|Gauge)\("(gateway_\w+)"', source):
        names |= {family, f"{family}_total", f"{family}_bucket", f"{family}_count", f"{family}_sum"}
    return names


def test_every_query_names_an_exported_metric():
    dashboard = json.loads(DASHBOARD.read_text())
    exported = _exported()
    assert "gateway_requests_total" in exported and "gateway_store_failing" in exported
    queried = {name for panel in dashboard["panels"] for target in panel["targets"]
               for name in re.findall(r"\bgateway_\w+", target["expr"])}
    assert queried and queried <= exported, queried - exported
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
