"""The API's page at `/`: the Swagger UI on this service's own OpenAPI document, nothing loaded from elsewhere.

BentoML's own index page loads Google Tag Manager and links to GitHub, and its
document says "This is a Machine Learning Service created with BentoML" under five
badge images from the internet. This page loads only the Swagger UI files BentoML
serves itself (`/static_content/`, checked at start-up by sentiment/http/openapi.py)
and the amended document; the Swagger UI's online validator badge is off.
"""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import HTMLResponse

from . import routes
from .info import TITLE, InfoEndpoint

STATIC = routes.STATIC.strip("/")  # where BentoML serves the Swagger UI's files
ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "favicon-light-32x32.png")

_PAGE = """<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <title>{title}</title>
    <link rel="stylesheet" type="text/css" href="./{static}/swagger-ui.css">
    <link rel="icon" type="image/png" href="./{static}/favicon-light-32x32.png" sizes="32x32">
    <style>body {{ margin: 0; background: #fafafa; }}</style>
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="./{static}/swagger-ui-bundle.js" charset="UTF-8"></script>
    <script>
      window.ui = SwaggerUIBundle({{
        url: ".{doc}", dom_id: "#swagger-ui", deepLinking: true,
        validatorUrl: null,  // the default validator is an image from the internet
        presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout",
      }});
    </script>
  </body>
</html>
"""


class IndexPage:
    """The `GET /` route."""

    def __init__(self, info: InfoEndpoint) -> None:
        self.info = info

    async def respond(self, request: Request) -> HTMLResponse:
        title = html.escape(f"{TITLE} {self.info.version()}")
        return HTMLResponse(_PAGE.format(title=title, static=STATIC, doc=routes.OPENAPI_DOC))
