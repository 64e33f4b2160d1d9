"""HTTP layer: the operator console page (/console) and its static assets, shipped in the wheel."""

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.responses import FileResponse, Response

ASSETS = Path(__file__).resolve().parent.parent / "console"
ASSETS_URL = "/console/assets"

# The page talks to persistd only: the policy makes the browser refuse any other origin, so a
# mistake in the script cannot leak a token or a record elsewhere.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def install_console(app: FastAPI) -> None:
    """Serve the console at /console; it reads everything through the public /v1 routes."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="console-assets")

    async def console() -> Response:
        return FileResponse(ASSETS / "index.html", headers=HEADERS, media_type="text/html")

    app.add_api_route("/console", console, include_in_schema=False)
