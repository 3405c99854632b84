"""A brand as one static HTML page: the stylesheet inlined, images as data URLs, sample
content in the brand's colours and fonts, its warnings, and its e-mails rendered with sample
values (HTML bodies in a sandboxed frame). ``tenantry brand preview`` writes it to a file."""

from __future__ import annotations

import base64

from jinja2 import Environment
from markupsafe import Markup

from tenantry.branding.brand import Brand
from tenantry.branding.css import render_css
from tenantry.branding.emails import render_template, sample_context
from tenantry.branding.theme import theme_warnings

__all__ = ["preview_html"]

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{ brand.product_name }} · brand preview (version {{ brand.version }})</title>
{% if favicon %}<link rel="icon" href="{{ favicon }}">{% endif %}
<style>
{{ css }}
body { margin: 0; background: var(--brand-background); color: var(--brand-text); font-family: var(--brand-font-body); }
h1, h2 { font-family: var(--brand-font-heading); }
header { display: flex; gap: 1rem; align-items: center; padding: 1rem 2rem; background: var(--brand-surface); }
header img { max-height: 48px; }
main { padding: 1rem 2rem 3rem; max-width: 960px; }
.card { background: var(--brand-surface); padding: 1rem; border-radius: 8px; margin: 1rem 0; }
.muted { color: var(--brand-muted); } a { color: var(--brand-primary); }
button { font: inherit; padding: .5rem 1rem; border: 0; border-radius: 6px; background: var(--brand-primary); color: var(--brand-on-primary); }
button.secondary { background: var(--brand-secondary); } .danger { color: var(--brand-danger); } .accent { color: var(--brand-accent); }
.swatches { display: grid; grid-template-columns: repeat(auto-fill, minmax(130px, 1fr)); gap: .6rem; }
.swatch { border-radius: 6px; padding: 2.2rem .5rem .4rem; font: 12px/1.3 var(--brand-font-mono); background: #fff; color: #000; border: 1px solid #ccc; }
.swatch span { display: block; height: 1.6rem; margin: -2rem -.5rem .4rem; border-radius: 6px 6px 0 0; }
.warning { background: #fff4e6; color: #7c2d12; padding: .5rem .8rem; border-radius: 6px; margin: .3rem 0; }
pre, code { font-family: var(--brand-font-mono); white-space: pre-wrap; }
iframe { width: 100%; min-height: 12rem; border: 1px solid #ccc; background: #fff; }
</style>
</head>
<body>
<header>{% if logo %}<img src="{{ logo }}" alt="">{% endif %}<strong>{{ brand.product_name }}</strong></header>
<main>
<h1>{{ brand.product_name }}</h1>
<p>Brand of <code>{{ brand.slug }}</code>, version {{ brand.version }}.
  <span class="muted">Muted text looks like this.</span> <a href="#">A link</a>.</p>
{% for w in warnings %}<div class="warning">{{ w.message }}</div>{% endfor %}
<div class="card"><p>Text on a surface. <span class="accent">Accent</span>, <span class="danger">danger</span>.</p>
  <button>Primary action</button> <button class="secondary">Secondary</button></div>
<h2>Palette</h2>
<div class="swatches">{% for name, value in colors.items() %}
  <div class="swatch"><span style="background: {{ value }}"></span>{{ name }}<br>{{ value }}</div>{% endfor %}
</div>
<h2>Fonts</h2>
<p>Body: <code>{{ fonts.body|join(", ") }}</code><br>Heading: <code>{{ fonts.heading|join(", ") }}</code>
<br>Mono: <code>{{ fonts.mono|join(", ") }}</code></p>
<h2>E-mail</h2>
<p>Sent as <strong>{{ brand.sender_name }}</strong>.</p>
{% for name, mail in emails.items() %}
<div class="card"><h3><code>{{ name }}</code>: {{ mail.subject }}</h3>
<pre>{{ mail.text }}</pre>
{% if mail.html is not none %}<iframe sandbox title="{{ name }}" srcdoc="{{ mail.html }}"></iframe>{% endif %}</div>
{% else %}<p class="muted">No e-mail templates.</p>{% endfor %}
</main>
</body>
</html>
"""

_ENV = Environment(autoescape=True, keep_trailing_newline=True)


def _data_url(found: tuple[str, bytes] | None) -> str | None:
    if found is None:
        return None
    return f"data:{found[0]};base64,{base64.b64encode(found[1]).decode()}"


def preview_html(brand: Brand, logo: tuple[str, bytes] | None, favicon: tuple[str, bytes] | None) -> str:
    """The preview page of ``brand``, given its logo and favicon ``(content type, bytes)``."""
    css = render_css(brand.theme)
    if "</" in css:  # cannot happen (tokens are validated); never let it close the <style>
        raise ValueError("the stylesheet holds '</'")
    values = sample_context(brand.product_name, brand.sender_name) | {"tenant_name": brand.tenant_name}
    emails = {}
    for name, template in sorted(brand.theme.email.templates.items()):
        emails[name] = {
            "subject": render_template(template.subject, values, html=False, part="subject"),
            "text": render_template(template.text, values, html=False, part="text"),
            "html": None if template.html is None else render_template(template.html, values, html=True, part="html"),
        }
    return _ENV.from_string(_PAGE).render(
        brand=brand,
        css=Markup(css),
        logo=_data_url(logo),
        favicon=_data_url(favicon),
        colors=brand.theme.colors.model_dump(),
        fonts=brand.theme.fonts.model_dump(),
        warnings=theme_warnings(brand.theme),
        emails=emails,
    )
