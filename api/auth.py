"""Who is calling: bearer tokens (or, for map pages in a browser, a session cookie), roles, and
which residents' personal information the caller may see."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gridwatch.api.http_errors import LoginRequired, Unauthorized
from gridwatch.errors import Forbidden, NotFound
from gridwatch.store.filters import Filters
from gridwatch.store.users import Principal

SESSION_COOKIE = "gw_session"
CSRF_HEADER = "x-requested-with"
CSRF_VALUE = "gridwatch"
READERS = ("admin", "duty_officer", "grid_worker")


def bearer_token(header: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme in any case, spaces
    around the token ignored); None for any other header."""
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def authenticate(request: Request, *, fresh: bool = False) -> Principal | None:
    """The principal of the request, or None when it carries no credentials at all.
    `fresh`: look the token up again even if it was checked a moment ago."""
    state = request.app.state.gw
    header = request.headers.get("authorization")
    if header is not None:
        token = bearer_token(header)
        if token is None:
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        principal = await state.principal_for_token(token, fresh=fresh)
        if principal is None:
            raise Unauthorized("the token is not recognised or has been revoked")
        return principal
    session = request.cookies.get(SESSION_COOKIE)
    if session:
        # A cookie rides along on cross-site requests; a custom header cannot be sent
        # cross-site without CORS, which gridwatch allows only to listed origins and never
        # with credentials (cookies). So writes need it.
        if request.method not in ("GET", "HEAD") and (
            request.headers.get(CSRF_HEADER) != CSRF_VALUE
        ):
            raise Forbidden(
                f"a write from a browser session must carry the header "
                f"X-Requested-With: {CSRF_VALUE}"
            )
        return await state.principal_for_session(session)
    return None


async def caller(request: Request) -> Principal:
    """Any authenticated principal; 401 without credentials."""
    principal = await authenticate(request)
    if principal is None:
        raise Unauthorized("no credentials: send 'Authorization: Bearer <token>'")
    request.state.principal = principal
    return principal


async def reader(principal: Annotated[Principal, Depends(caller)]) -> Principal:
    """A person who reads and acts on their grids (not a device)."""
    if principal.role not in READERS:
        raise Forbidden("device tokens may only post check-ins and hazards")
    return principal


async def page_viewer(request: Request) -> Principal:
    """Like `reader`, but a browser without a session is sent to the login page."""
    principal = await authenticate(request)
    if principal is None:
        if "text/html" in request.headers.get("accept", ""):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise LoginRequired(target)
        raise Unauthorized("no credentials: send 'Authorization: Bearer <token>' or log in")
    request.state.principal = principal
    return await reader(principal)


async def admin(principal: Annotated[Principal, Depends(reader)]) -> Principal:
    """An administrator."""
    if principal.role != "admin":
        raise Forbidden("only administrators may use this route")
    return principal


Caller = Annotated[Principal, Depends(caller)]
Reader = Annotated[Principal, Depends(reader)]
Admin = Annotated[Principal, Depends(admin)]
PageViewer = Annotated[Principal, Depends(page_viewer)]


def ensure_visible(
    principal: Principal, grid_id: int | None, missing: str, police_grid_id: int | None = None
) -> None:
    """NotFound, with the same words as for an object that does not exist, when the object
    lies outside the caller's grids (of either system): another grid's objects are not even
    confirmed to exist."""
    if not principal.sees_grid(grid_id, police_grid_id):
        raise NotFound(missing)


def sees_personal_data(principal: Principal, grid_id: int | None) -> bool:
    """Names, phones and addresses: for admins, duty officers over the resident's grid and
    the resident's own grid worker; masked for everyone else. The management grid decides:
    a user given police grids sees the points in them, the people masked (their information
    was collected for the community's care, not for the police's)."""
    if principal.role == "admin":
        return True
    if principal.role in ("duty_officer", "grid_worker"):
        return principal.sees_grid(grid_id)
    return False


def scope_filters(principal: Principal, **asked) -> Filters:
    """The caller's grids (of both systems) as listing filters, with what else is `asked`."""
    return Filters(
        scope=None if principal.sees_all else principal.scope_param(),
        police_scope=principal.police_scope_param(),
        **asked,
    )
