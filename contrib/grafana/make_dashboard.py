"""Writes contrib/grafana/wsgi-gateway.json (run from the repository root): the dashboard
is generated, so its panels stay consistent; edit here, not in the JSON."""

import json
DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
panels = []
def panel(title, exprs, x, y, w=12, h=8, unit="reqps", kind="timeseries", desc=""):
    panels.append({
        "id": len(panels) + 1, "type": kind, "title": title, "description": desc, "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "right", "calcs": ["mean", "max"]},
                    "tooltip": {"mode": "multi"}},
        "targets": [{"refId": chr(65 + i), "datasource": DS, "expr": e, "legendFormat": l}
                    for i, (e, l) in enumerate(exprs)],
    })
A = 'api=~"$api"'
panel("Requests by API", [(f'sum by (api) (rate(gateway_requests_total{{{A}}}[$__rate_interval]))', "{{api}}")], 0, 0)
panel("Error ratio (5xx)", [(f'sum by (api) (rate(gateway_requests_total{{{A},status=~"5.."}}[$__rate_interval])) / sum by (api) (rate(gateway_requests_total{{{A}}}[$__rate_interval]))', "{{api}}")], 12, 0, unit="percentunit")
panel("Refusals by decision", [(f'sum by (decision) (rate(gateway_requests_total{{{A},decision!~"allow|-"}}[$__rate_interval]))', "{{decision}}")], 0, 8,
      desc="deny (rules), invalid (validate), unauthenticated, revoked, limited, unavailable")
panel("Latency percentiles", [(f'histogram_quantile({q}, sum by (le) (rate(gateway_request_duration_seconds_bucket{{{A}}}[$__rate_interval])))', f"p{int(q*100)}") for q in (0.5, 0.95, 0.99)], 12, 8, unit="s")
panel("p95 by stage", [(f'histogram_quantile(0.95, sum by (le, stage) (rate(gateway_stage_duration_seconds_bucket{{{A}}}[$__rate_interval])))', "{{stage}}")], 0, 16, unit="s")
panel("Authentication failures by method and reason", [(f'sum by (method, reason) (rate(gateway_authn_total{{{A},outcome=~"failed|refused|no_credential"}}[$__rate_interval]))', "{{method}} {{reason}}")], 12, 16)
panel("Deny rules that matched", [(f'sum by (rule) (rate(gateway_rule_outcomes_total{{{A},outcome="true",rule=~"$deny_rules"}}[$__rate_interval]))', "{{rule}}")], 0, 24,
      desc="the deny rules named in $deny_rules (a regex; rule names come from your rule files)")
panel("Rule errors and shadow mismatches", [(f'sum by (rule, outcome) (rate(gateway_rule_outcomes_total{{{A},outcome=~"error|shadow_mismatch"}}[$__rate_interval]))', "{{rule}} {{outcome}}")], 12, 24)
panel("Rate-limit and quota rejections by policy", [(f'sum by (policy, kind) (rate(gateway_limit_rejections_total{{{A}}}[$__rate_interval]))', "{{policy}} {{kind}}")], 0, 32)
panel("Store health", [('sum by (concern) (rate(gateway_store_errors_total[$__rate_interval]))', "errors: {{concern}}"), ('max(gateway_store_failing)', "breaker open")], 12, 32, unit="short")
panel("URL upstreams: status", [(f'sum by (api, status) (rate(gateway_upstream_responses_total{{{A}}}[$__rate_interval]))', "{{api}} {{status}}")], 0, 40)
panel("URL upstreams: p95 time to headers", [(f'histogram_quantile(0.95, sum by (le, api) (rate(gateway_upstream_seconds_bucket{{{A}}}[$__rate_interval])))', "{{api}}")], 12, 40, unit="s")
panel("Key set fetches and introspection calls", [('sum by (source, provider, outcome) (rate(gateway_fetches_total[$__rate_interval]))', "{{source}} {{provider}} {{outcome}}")], 0, 48)
panel("Key set age (oldest worker)", [('max by (provider) (gateway_keyset_age_seconds)', "{{provider}}")], 12, 48, unit="s")
dashboard = {
    "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource", "pluginId": "prometheus", "pluginName": "Prometheus"}],
    "title": "wsgi-gateway", "uid": "wsgi-gateway", "schemaVersion": 39, "version": 1,
    "tags": ["wsgi-gateway"], "timezone": "utc", "refresh": "30s",
    "time": {"from": "now-1h", "to": "now"},
    "templating": {"list": [
        {"name": "api", "type": "query", "datasource": DS, "label": "API",
         "query": {"query": "label_values(gateway_requests_total, api)", "refId": "api"},
         "definition": "label_values(gateway_requests_total, api)",
         "includeAll": True, "multi": True, "allValue": ".*", "current": {"text": "All", "value": "$__all"}, "refresh": 2},
        {"name": "deny_rules", "type": "textbox", "label": "deny rules (regex)", "query": ".*",
         "current": {"text": ".*", "value": ".*"}},
    ]},
    "panels": panels,
}
open("contrib/grafana/wsgi-gateway.json", "w").write(json.dumps(dashboard, indent=2) + "\n")
