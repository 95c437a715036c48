"""Data Docs that work offline: Great Expectations' pages without their CDN assets.

GX 1.x pages load Bootstrap, jQuery, Font Awesome, bootstrap-table and Vega from five CDNs and a logo
from S3, so on a machine without internet (or in MLflow's sandboxed viewer) they render unstyled and
their scripts fail. Their content is static HTML (tables of expectations and observed values) with
GX's own styles inline, so each page is rewritten in place: every remote stylesheet, script and
image is dropped, the inline scripts (jQuery widgets) too, and a small stylesheet of the classes the
pages use is embedded, with a Content-Security-Policy that forbids any network load. The result is
one self-contained file: the page uploaded to MLflow is that file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

MARKER: Final = "slipway-offline-data-docs"
CSP: Final = (
    '<meta http-equiv="Content-Security-Policy" '
    "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
)

_REMOTE_LINK = re.compile(r"<link\b[^>]*\bhref=[\"']https?://[^>]*>", re.IGNORECASE)
_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script\s*>", re.IGNORECASE | re.DOTALL)
_REMOTE_IMG = re.compile(r"<img\b[^>]*\bsrc=[\"']https?://[^>]*>", re.IGNORECASE | re.DOTALL)
_REMOTE_URL = re.compile(r"url\(\s*['\"]?https?://[^)]*\)", re.IGNORECASE)
_REMOTE_ATTR = re.compile(
    r"<(?:link|script|img|iframe|source)\b[^>]*\b(?:href|src)=[\"']https?://", re.IGNORECASE
)

OFFLINE_CSS: Final = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;font-size:14px;line-height:1.45;
 color:#212529;background:#fff;margin:0}
a{color:#0b62c4}
.container-fluid{padding:16px 24px}.row{display:flex;flex-wrap:wrap;gap:16px}
[class*="col-"]{flex:1 1 0;min-width:0}.col-12{flex-basis:100%}.col-lg-2,.col-md-2{flex:0 0 220px}
.navbar{display:flex;align-items:center;padding:8px 24px;border-bottom:1px solid #dee2e6;height:auto!important}
.ge-logo{font-weight:600;font-size:18px}
.breadcrumb{display:flex;list-style:none;gap:8px;margin:0 0 0 12px;padding:0}
.breadcrumb-item+.breadcrumb-item::before{content:"/";padding-right:8px;color:#6c757d}
.d-none{display:none}.d-md-inline-flex{display:inline-flex!important}
.sticky{position:sticky;top:0}
.nav{list-style:none;padding:0;margin:0}.nav-link{display:block;padding:2px 4px}
.card{border:1px solid #dee2e6;border-radius:4px;margin-bottom:12px}
.card-header{background:#f1f3f5;padding:6px 10px;font-weight:600}.card-body{padding:8px 10px}
table,.table{border-collapse:collapse;width:100%;margin:6px 0 14px}
th,td{border:1px solid #dee2e6;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f1f3f5}.table-responsive{overflow-x:auto}
.badge{display:inline-block;padding:1px 6px;border-radius:8px;background:#e9ecef;font-size:12px;
 font-family:ui-monospace,monospace;margin:1px}
.alert{padding:6px 10px;border-radius:4px;border:1px solid #dee2e6;background:#f8f9fa;margin:4px 0}
.lead{font-size:16px;color:#495057}
.text-success{color:#1a7f37}.text-danger{color:#c62828}.text-warning{color:#9a6700}
.fas,.fa{font-style:normal}
.fa-check-circle::before{content:"✔"}.fa-times-circle::before,.fa-times::before{content:"✖"}
.fa-exclamation-triangle::before{content:"⚠"}.fa-question-circle::before{content:"?"}
button,.btn{display:none}
"""


def offline_html(html: str) -> str:
    """Pure; the page without remote assets or scripts, with the offline stylesheet and a no-network CSP."""
    if MARKER in html:
        return html
    out = _REMOTE_LINK.sub("", html)
    out = _SCRIPT.sub("", out)
    out = _REMOTE_IMG.sub('<span class="ge-logo">Great Expectations</span>', out)
    out = _REMOTE_URL.sub("none", out)
    head = f'{CSP}\n<style id="{MARKER}">{OFFLINE_CSS}</style>\n'
    if re.search(r"</head\s*>", out, re.IGNORECASE):
        return re.sub(r"</head\s*>", lambda _: head + "</head>", out, count=1, flags=re.IGNORECASE)
    return head + out


def remote_assets(html: str) -> list[str]:
    """Pure; the start of every tag that would load something from the network (empty when offline)."""
    return [m.group(0) for m in _REMOTE_ATTR.finditer(html)] + _REMOTE_URL.findall(html)


def make_site_offline(site_dir: Path) -> int:
    """Blocking (reads every page, rewrites the new ones); idempotent; how many pages it rewrote."""
    rewritten = 0
    for page in site_dir.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        if MARKER in html:
            continue
        page.write_text(offline_html(html), encoding="utf-8")
        rewritten += 1
    return rewritten
