"""The console's pages: sign-in through the provider (authorization code with PKCE), the shell,
and each role's screens. Routes read the form, call the services as the user and render what
they answer; every form carries the session's CSRF token and an idempotency key made when the
form was drawn, so a double click or a resubmitted form records once.
"""

from __future__ import annotations

import asyncio
import gettext
import hmac
import ipaddress
import secrets
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import httpx
import jwt
from fastapi import Cookie, Depends, FastAPI, Form, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from contract.events.verification import RejectionReason
from contract.policy import policy_book
from services.console import audit_pages, exports, imports
from services.console.claim_form import CHILD_ROWS, FIELD_OF, claim_request, typed_values
from services.console.client import Answer, Service, ServiceDownError, Services
from services.console.i18n import (
    DEFAULT_LANGUAGE,
    JAKARTA,
    Language,
    instant,
    kecamatan_name,
    kelurahan_name,
    long_date,
    number,
    occupation_name,
    rupiah,
    translations,
)
from services.console.listings import (
    FIRST_PAGE,
    MAX_PAGE,
    PAGE_SIZE,
    Asked,
    Asking,
    Table,
    listing_page,
    shown,
)
from services.console.names import REJECTION_REASONS, ROLE_NAMES, STANDINGS
from services.console.refusals import N_, by_field, translated
from services.console.sessions import (
    SESSION_COOKIE,
    PageSession,
    Session,
    Sessions,
    SignInRequiredError,
)
from services.console.settings import ConsoleSettings
from services.console.typed import day_or_today, iso_date, rupiahs
from shared.auth import (
    AuthSettings,
    Principal,
    ProviderUnavailableError,
    discovery,
    service_audience,
    verifier_for,
)
from shared.http import install_request_limits
from shared.oidc_login import (
    PendingSignIns,
    ProviderEndpoints,
    SignInsFullError,
    code_challenge,
    new_verifier,
)
from shared.telemetry import COMMANDS

SIGN_IN_COOKIE = "berlian_console_sign_in"
LANGUAGE_COOKIE = "berlian_console_language"
# The whole city, as the verification service's worklists name it.
CITY_AREA = "33.75"
# What a listing asks a service for at most (the services' own bound).
MAX_LISTED = 1000
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self' "
    "http: https:",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
# What each benefit item is, in plain words (the amount is shown beside it).
BENEFIT_ITEMS = {
    "JKM_LUMP_SUM": N_("Death benefit, paid at once"),
    "JKM_PERIODIC": N_("Periodic death benefit, paid at once"),
    "FUNERAL": N_("Funeral costs"),
    "JKK_DEATH": N_("Work-accident death benefit (a multiple of the insured income)"),
    "JKK_PERIODIC": N_("Periodic work-accident benefit, paid at once"),
    "STMB_FULL": N_("Wages while unable to work, at 100% of the insured income"),
    "STMB_REDUCED": N_("Wages while unable to work, at a reduced share"),
    "DISABILITY_TOTAL": N_("Total permanent disability"),
    "MEDICAL": N_("Medical care, as needed"),
    "SCHOLARSHIP_TK": N_("Scholarship, kindergarten (TK)"),
    "SCHOLARSHIP_SD": N_("Scholarship, primary school (SD)"),
    "SCHOLARSHIP_SMP": N_("Scholarship, junior high school (SMP)"),
    "SCHOLARSHIP_SMA": N_("Scholarship, senior high school (SMA)"),
    "SCHOLARSHIP_UNIVERSITY": N_("Scholarship, university"),
}
ACCIDENT_BENEFITS = {
    "medical": N_("Medical care"),
    "temporary_incapacity": N_("Temporarily unable to work (STMB)"),
    "total_permanent_disability": N_("Total permanent disability"),
}
SCHOOL_LEVELS = {
    "TK": N_("Kindergarten (TK)"),
    "SD": N_("Primary school (SD)"),
    "SMP": N_("Junior high school (SMP)"),
    "SMA": N_("Senior high school (SMA)"),
    "university": N_("University"),
}
CLAIM_DOCUMENTS = {
    "akta kematian": N_("Death certificate (akta kematian)"),
    "kartu keluarga": N_("Family card (kartu keluarga)"),
    "ktp ahli waris": N_("The heir's identity card (KTP)"),
    "surat keterangan kecelakaan": N_("Accident report"),
    "buku rekening": N_("Bank book of the heir"),
}
CLAIM_STATUS = {
    "approved": N_("approved"),
    "rejected": N_("rejected"),
    "pending": N_("waiting: premiums in arrears"),
    "paid": N_("paid"),
}
# The columns of each download, in the order its rows give them (NIK is NIK in both languages).
COLUMNS: dict[str, tuple[str, ...]] = {
    "workers": (N_("Name"), "NIK", N_("Occupation"), N_("Status"), N_("Coverage from")),
    "worklist": (N_("Worker"), N_("Kelurahan"), N_("Registered")),
    "invoices": (
        N_("Month"),
        N_("Supplementary"),
        N_("Worker-months"),
        N_("Total"),
        N_("Issued"),
        N_("Paid on"),
        N_("SP2D reference"),
    ),
    "invoice-lines": (
        N_("Worker"),
        N_("Month"),
        N_("Cohort"),
        N_("Amount"),
        N_("Paid on"),
        N_("Cancelled"),
    ),
    "arrears": (
        N_("Worker"),
        N_("Standing"),
        N_("Months unpaid"),
        N_("Owed"),
        N_("Last month paid"),
    ),
    "claims": (
        N_("Claim"),
        N_("Worker"),
        N_("Benefit"),
        N_("Incident date"),
        N_("Status"),
        N_("Total"),
    ),
    "decree-annex": (
        N_("No."),
        N_("Name"),
        "NIK",
        N_("Kelurahan"),
        N_("Kecamatan"),
        N_("Months"),
        N_("Coverage from"),
    ),
}
COHORT_NAMES = {"regular": N_("regular"), "incidental": N_("incidental")}
STATUS_NAMES = {
    "registered": N_("registered"),
    "covered": N_("covered"),
    "ended": N_("ended"),
    "verified": N_("verified"),
    "rejected": N_("rejected"),
}


@dataclass(frozen=True)
class Listing:
    """A service's paged listing: where it is, the most it answers at once (its bound), the
    field holding the items, and how many there are in all."""

    service: Service
    path: str
    most: int
    items: str
    total: Callable[[Any], int]


WORKER_SEARCH = Listing("enrolment", "/workers/search", 100, "workers", lambda b: int(b["total"]))
ARREARS = Listing("billing", "/arrears", 500, "workers", lambda b: int(b["total"]))
# The cases the kecamatan validated, ready for the city's designation: the whole city's.
READY = Listing(
    "verification", f"/worklists/city/{CITY_AREA}", 1000, "cases", lambda b: int(b["pending"])
)


def invoice_lines(invoice_id: uuid.UUID) -> Listing:
    return Listing(
        "billing", f"/invoices/{invoice_id}", 500, "lines", lambda b: int(b["invoice"]["lines"])
    )


def form_session(session: PageSession, csrf: Annotated[str, Form(max_length=128)]) -> Session:
    """The session a form was sent from, once the form shows it was drawn by that session's
    pages (its CSRF token). Every form's route takes its session from here, so no form can
    leave the check out; it runs before the rest of the form is read."""
    if not hmac.compare_digest(csrf, session.csrf):
        raise HTTPException(
            403, N_("This form did not come from this session's pages: open the page again.")
        )
    return session


FormSession = Annotated[Session, Depends(form_session)]


def create_app(settings: ConsoleSettings, auth: AuthSettings) -> FastAPI:
    app = FastAPI(title="Berlian console", docs_url=None, redoc_url=None, openapi_url=None)
    install_request_limits(app)
    environment = Environment(
        loader=PackageLoader("services.console", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        extensions=["jinja2.ext.i18n"],
    )
    sessions = Sessions(settings.idle_timeout_seconds)
    # Discovered once an hour, not on every sign-in: a flood of sign-ins never reaches the
    # provider's discovery document.
    endpoints_of_provider = ProviderEndpoints(auth)
    # Bounded per browser address and in all: a flood of sign-ins is refused, it never pushes
    # out the sign-ins other people are in the middle of.
    pending_sign_ins = PendingSignIns()
    app.state.sessions = sessions
    services = Services(settings)
    # Any of the services' audiences proves the token is one the provider issued for them.
    tokens = verifier_for(auth, service_audience("enrolment"))
    callback = f"{settings.url}/sign-in/callback"
    app.router.on_shutdown.append(services.close)
    app.mount("/static", StaticFiles(packages=[("services.console", "static")]), "static")

    @app.middleware("http")
    async def headers_and_measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        # The services' request counter, under the console's name: one dashboard shows both.
        route = getattr(request.scope.get("route"), "path", "unmatched")
        outcome = "accepted" if response.status_code < 400 else "refused"
        COMMANDS.labels("console", f"{request.method} {route}", outcome).inc()
        return response

    def render(
        name: str, session: Session | None, language: Language, status: int = 200, **values: Any
    ) -> HTMLResponse:
        catalogue = translations(language)
        # Rendering is synchronous: no other request renders between these two lines.
        environment.install_gettext_translations(catalogue, newstyle=True)  # type: ignore[attr-defined]
        html = environment.get_template(name).render(
            session=session,
            principal=session.principal if session else None,
            role_name=catalogue.gettext(ROLE_NAMES[session.principal.role]) if session else "",
            csrf=session.csrf if session else "",
            language=language,
            rupiah=lambda amount: rupiah(amount, language),
            number=lambda value: number(value, language),
            long_date=lambda day: long_date(day, language),
            instant=lambda moment: instant(moment, language),
            occupation=lambda code: occupation_name(code, language),
            kelurahan=kelurahan_name,
            kecamatan=kecamatan_name,
            status_name=lambda s: catalogue.gettext(STATUS_NAMES.get(str(s), str(s))) if s else "–",
            reason_name=lambda r: catalogue.gettext(REJECTION_REASONS.get(str(r), str(r))),
            standing_name=lambda s: catalogue.gettext(STANDINGS.get(str(s), str(s))),
            **values,
        )
        return HTMLResponse(html, status)

    def allowed(session: Session, *roles: str) -> None:
        if session.principal.role not in roles:
            raise HTTPException(403, N_("Your role may not use this page."))

    async def recorded(
        session: Session, service: Service, path: str, form_key: str, body: Any
    ) -> Answer:
        """A form's command sent as the user, under the key made when the form was drawn: the
        same form sent twice is answered with the first answer."""
        return await services.call(
            service, "POST", path, session.token, idempotency_key=form_key, json=body
        )

    @app.exception_handler(SignInRequiredError)
    async def to_sign_in(_: Request, __: Exception) -> RedirectResponse:
        return RedirectResponse("/sign-in", status_code=303)

    @app.exception_handler(ServiceDownError)
    async def service_down(request: Request, error: ServiceDownError) -> HTMLResponse:
        # The form comes back with everything typed or chosen (every value of a field chosen
        # many times, such as the workers of a designation), under its key: sent again, it is
        # recorded once, whether or not the first attempt was.
        session = sessions.get(request.cookies.get(SESSION_COOKIE))
        language = session.language if session else DEFAULT_LANGUAGE
        form = (await request.form()).multi_items() if request.method == "POST" else []
        kept = kept_fields([(k, v) for k, v in form if isinstance(v, str) and k != "csrf"])
        return render(
            "unavailable.html.j2",
            session,
            language,
            503,
            service=error.service,
            action=request.url.path,
            kept=kept,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> HTMLResponse:
        # What was wrong, never what was sent (it may be personal data).
        session = sessions.get(request.cookies.get(SESSION_COOKIE))
        language = session.language if session else DEFAULT_LANGUAGE
        fields = sorted({".".join(str(p) for p in e["loc"][1:]) for e in error.errors()[:20]})
        detail = translations(language).gettext("These fields were not understood: %(fields)s")
        return render(
            "refused.html.j2", session, language, 422, detail=detail % {"fields": ", ".join(fields)}
        )

    @app.exception_handler(HTTPException)
    async def refused(request: Request, error: HTTPException) -> HTMLResponse:
        session = sessions.get(request.cookies.get(SESSION_COOKIE))
        language = session.language if session else DEFAULT_LANGUAGE
        return render(
            "refused.html.j2",
            session,
            language,
            error.status_code,
            detail=translations(language).gettext(str(error.detail)),
        )

    # -- health and metrics ------------------------------------------------------------------

    @app.get("/health/live")
    async def live() -> JSONResponse:
        return JSONResponse({"alive": True})

    @app.get("/health/ready")
    async def ready() -> JSONResponse:
        try:
            await asyncio.to_thread(discovery, auth)
        except ProviderUnavailableError as error:
            return JSONResponse({"ready": False, "problems": [str(error)]}, 503)
        return JSONResponse({"ready": True, "problems": []})

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    # -- signing in and out ------------------------------------------------------------------

    @app.get("/sign-in", response_class=HTMLResponse)
    async def sign_in_page(
        error: Annotated[str | None, Query(max_length=300)] = None,
        lang: Annotated[Language | None, Query()] = None,
        chosen: Annotated[str | None, Cookie(alias=LANGUAGE_COOKIE, max_length=4)] = None,
    ) -> HTMLResponse:
        language: Language = lang or ("en" if chosen == "en" else DEFAULT_LANGUAGE)
        response = render("sign_in.html.j2", None, language, error=error)
        if lang:
            set_cookie(response, LANGUAGE_COOKIE, lang, max_age=365 * 86400, same_site="lax")
        return response

    @app.get("/sign-in/provider")
    async def sign_in_at_provider(
        request: Request,
        browser: Annotated[str | None, Cookie(alias=SIGN_IN_COOKIE, max_length=64)] = None,
        chosen: Annotated[str | None, Cookie(alias=LANGUAGE_COOKIE, max_length=4)] = None,
    ) -> RedirectResponse:
        endpoints = await asyncio.to_thread(endpoints_of_provider)
        browser = browser or secrets.token_urlsafe(32)
        verifier = new_verifier()
        language: Language = "en" if chosen == "en" else "id"
        client = browser_address(request.client.host if request.client else "")
        try:
            state = pending_sign_ins.start(client, browser, verifier, language)
        except SignInsFullError as full:
            raise HTTPException(
                503, N_("Too many sign-ins are waiting: try again in a few minutes.")
            ) from full
        query = urlencode(
            {
                "response_type": "code",
                "client_id": settings.client_id,
                "redirect_uri": callback,
                "scope": "openid",
                "state": state,
                "code_challenge": code_challenge(verifier),
                "code_challenge_method": "S256",
                "ui_locales": language,
            }
        )
        response = RedirectResponse(f"{endpoints['authorization_endpoint']}?{query}", 303)
        set_cookie(response, SIGN_IN_COOKIE, browser, max_age=3600, same_site="lax")
        return response

    @app.get("/sign-in/callback", response_class=HTMLResponse)
    async def provider_callback(
        code: Annotated[str, Query(max_length=4096)] = "",
        state: Annotated[str, Query(max_length=128)] = "",
        error: Annotated[str, Query(max_length=200)] = "",
        browser: Annotated[str | None, Cookie(alias=SIGN_IN_COOKIE, max_length=64)] = None,
    ) -> Response:
        started = pending_sign_ins.answered(state)
        if started is None or not hmac.compare_digest(browser or "", started.browser):
            # Not the answer to a sign-in this browser started here: someone else's code.
            raise HTTPException(403, N_("This sign-in was not started from this browser."))
        if error or not code:
            return RedirectResponse(f"/sign-in?{urlencode({'error': error or 'no code'})}", 303)
        endpoints = await asyncio.to_thread(endpoints_of_provider)
        async with httpx.AsyncClient(timeout=auth.provider_timeout_seconds) as provider:
            answer = await provider.post(
                endpoints["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": callback,
                    "client_id": settings.client_id,
                    "code_verifier": started.verifier,
                },
            )
        if answer.status_code != 200:
            message = f"the identity provider refused the sign-in ({answer.status_code})"
            return RedirectResponse(f"/sign-in?{urlencode({'error': message})}", 303)
        granted = answer.json()
        token = str(granted.get("access_token", ""))
        try:
            principal: Principal = await asyncio.to_thread(tokens.principal, token)
        except (PermissionError, ProviderUnavailableError) as refusal:
            return RedirectResponse(f"/sign-in?{urlencode({'error': str(refusal)})}", 303)
        expiry = float(jwt.decode(token, options={"verify_signature": False})["exp"])
        language: Language = "en" if started.language == "en" else "id"
        session_id = sessions.start(
            principal, token, expiry, str(granted.get("id_token", "")), language
        )
        # A page of this site moves on: the session cookie is SameSite=Strict, and a redirect
        # straight from the provider's answer would count as cross-site.
        response = render("signed_in.html.j2", None, language)
        set_cookie(response, SESSION_COOKIE, session_id)
        delete_cookie(response, SIGN_IN_COOKIE)
        return response

    @app.post("/sign-out")
    async def sign_out(
        csrf: Annotated[str, Form(max_length=128)] = "",
        session_id: Annotated[str | None, Cookie(alias=SESSION_COOKIE, max_length=64)] = None,
    ) -> RedirectResponse:
        session = sessions.get(session_id)
        target = "/sign-in"
        if session is not None and hmac.compare_digest(csrf, session.csrf):
            sessions.end(session_id)
            if session.id_token:
                endpoints = await asyncio.to_thread(endpoints_of_provider)
                query = urlencode(
                    {
                        "id_token_hint": session.id_token,
                        "post_logout_redirect_uri": f"{settings.url}/sign-in",
                    }
                )
                target = f"{endpoints['end_session_endpoint']}?{query}"
        response = RedirectResponse(target, status_code=303)
        delete_cookie(response, SESSION_COOKIE)
        return response

    @app.post("/language")
    async def choose_language(
        session: FormSession,
        language: Annotated[Language, Form()],
        back: Annotated[str, Form(max_length=300, pattern=r"^/[^/\\]")] = "/",
        session_id: Annotated[str | None, Cookie(alias=SESSION_COOKIE, max_length=64)] = None,
    ) -> RedirectResponse:
        sessions.speak(session_id or "", language)
        response = RedirectResponse(back, status_code=303)
        set_cookie(response, LANGUAGE_COOKIE, language, max_age=365 * 86400, same_site="lax")
        return response

    # -- the shell -----------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    async def home(
        session: PageSession,
    ) -> HTMLResponse:
        return render("home.html.j2", session, session.language)

    app.include_router(audit_pages.router(render, services))

    # -- kelurahan officer: registration, workers, imports -----------------------------------

    def registration_form(
        session: Session,
        values: Mapping[str, str],
        errors: Mapping[str, list[str]] | None = None,
        general: list[str] | None = None,
        registered: Answer | None = None,
        status: int = 200,
    ) -> HTMLResponse:
        occupations = policy_book().in_force(datetime.now(JAKARTA).date()).occupations
        return render(
            "register.html.j2",
            session,
            session.language,
            status,
            values=values,
            errors=errors or {},
            general=general or [],
            registered=registered,
            occupations=sorted(occupations),
            form_key=str(uuid.uuid4()),
        )

    @app.get("/workers/new", response_class=HTMLResponse)
    async def new_worker(
        session: PageSession,
    ) -> HTMLResponse:
        allowed(session, "kelurahan_officer")
        return registration_form(session, {"kelurahan_code": session.principal.area or ""})

    @app.post("/workers", response_class=HTMLResponse)
    async def register(
        session: FormSession,
        request: Request,
        form_key: Annotated[str, Form(max_length=64)],
    ) -> HTMLResponse:
        allowed(session, "kelurahan_officer")
        form = await request.form()
        fields = ("nik", "full_name", "birth_date", "sex", "occupation_code", "address", "phone")
        values = {name: str(form.get(name, ""))[:500].strip() for name in fields}
        values["kelurahan_code"] = session.principal.area or ""
        body: dict[str, Any] = {k: v for k, v in values.items() if v}
        if "birth_date" in body:
            body["birth_date"] = iso_date(body["birth_date"])
        heir = str(form.get("heir_name", ""))[:200].strip()
        values["heir_name"] = heir
        values["heir_relationship"] = str(form.get("heir_relationship", ""))[:50].strip()
        if heir:
            body["heirs"] = [{"name": heir, "relationship": values["heir_relationship"] or "other"}]
        answer = await recorded(session, "enrolment", "/workers", form_key, body)
        language = translations(session.language)
        if answer.ok:
            return registration_form(
                session, {"kelurahan_code": values["kelurahan_code"]}, registered=answer
            )
        if answer.status == 409 and isinstance(answer.body, dict) and "worker_id" in answer.body:
            errors = {"nik": [translated(answer.detail, language)]}
            return registration_form(session, values, errors, status=409)
        errors, general = by_field(
            answer.problems, answer.detail, language, {name: name for name in (*fields, "heirs")}
        )
        return registration_form(session, values, errors, general, status=answer.status)

    async def workers_in_area(session: Session, status: str | None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"kelurahan": session.principal.area, "limit": MAX_LISTED}
        if status:
            params["status"] = status
        answer = await services.call("enrolment", "GET", "/workers", session.token, params=params)
        return list(answer.body or []) if answer.ok else []

    async def fetched(
        session: Session,
        listing: Listing,
        params: Mapping[str, Any],
        asked: Asked,
    ) -> tuple[Any, list[dict[str, Any]], int]:
        """A page of a service's paged listing as the user may see it (or, to download,
        everything up to MAX_LISTED, in the service's own pages): the last answer, the items
        and how many there are in all."""
        export = asked.export is not None
        wanted = MAX_LISTED if export else PAGE_SIZE
        offset = 0 if export else (asked.page - 1) * PAGE_SIZE
        found: list[dict[str, Any]] = []
        body: Any = None
        total = 0
        while len(found) < wanted:
            query = {**params, "offset": offset + len(found)}
            query["limit"] = min(listing.most, wanted - len(found))
            answer = await services.call(
                listing.service, "GET", listing.path, session.token, params=query
            )
            if not answer.ok:
                raise HTTPException(answer.status, answer.detail)
            body = answer.body
            items = list(body[listing.items])
            found += items
            total = listing.total(body)
            if not items or offset + len(found) >= total:
                break
        return body, found, total

    @app.get("/workers", response_class=Response)
    async def workers(
        session: PageSession,
        asked: Asking,
        q: Annotated[str, Query(max_length=100)] = "",
        status: Annotated[Literal["", "registered", "covered", "ended"], Query()] = "",
    ) -> Response:
        allowed(session, "kelurahan_officer")
        query = q.strip()
        language = translations(session.language)
        errors: dict[str, list[str]] = {}
        found: list[dict[str, Any]] = []
        total: int | None = None  # the search is paged by the service, the area's list here
        if len(query) == 1:
            errors["q"] = [language.gettext("Type two letters at least, or a 16-digit NIK.")]
        elif query:
            # The service matches the name, or finds the NIK through its keyed index.
            search = {"q": query, "kelurahan": session.principal.area} | (
                {"status": status} if status else {}
            )
            _, found, total = await fetched(session, WORKER_SEARCH, search, asked)
        else:
            found = await workers_in_area(session, status)
        return listing_page(
            render,
            session,
            asked,
            "workers.html.j2",
            [listed(session.language, "workers", found, "pekerja", total)],
            {"q": query, "status": status or ""},
            query=query,
            chosen_status=status or "",
            errors=errors,
        )

    @app.get("/imports/new", response_class=HTMLResponse)
    async def new_import(
        session: PageSession,
    ) -> HTMLResponse:
        allowed(session, "kelurahan_officer")
        return render(
            "import.html.j2",
            session,
            session.language,
            job=None,
            errors=[],
            form_key=str(uuid.uuid4()),
        )

    @app.post("/imports", response_class=HTMLResponse)
    async def upload_import(
        session: FormSession,
        list_file: UploadFile,
        form_key: Annotated[str, Form(max_length=64)],
    ) -> Response:
        allowed(session, "kelurahan_officer")
        language = translations(session.language)

        def refused(status: int, errors: list[str]) -> HTMLResponse:
            return render(
                "import.html.j2",
                session,
                session.language,
                status,
                job=None,
                errors=errors,
                form_key=str(uuid.uuid4()),
            )

        try:
            first = await imports.first_piece(list_file)
        except imports.UnreadableListError as error:
            return refused(422, [language.gettext(error.message) % error.values])
        # The same form sent twice answers the same job; the same file sent again registers
        # nobody twice: the service keys rows by the file.
        answer = await services.call(
            "enrolment",
            "POST",
            "/imports",
            session.token,
            idempotency_key=form_key,
            content=imports.pieces(list_file, first),
            headers={"Content-Type": imports.media_type(list_file)},
        )
        if not answer.ok:
            _, general = by_field(answer.problems, answer.detail, language, {})
            return refused(answer.status, general)
        return RedirectResponse(f"/imports/{answer.body['import_id']}", status_code=303)

    @app.get("/imports/{import_id}", response_class=HTMLResponse)
    async def import_progress(
        session: PageSession,
        import_id: uuid.UUID,
    ) -> HTMLResponse:
        answer = await services.call("enrolment", "GET", f"/imports/{import_id}", session.token)
        if not answer.ok:
            raise HTTPException(answer.status, answer.detail)
        job = answer.body
        return render(
            "import.html.j2",
            session,
            session.language,
            job=job,
            errors=[],
            form_key=str(uuid.uuid4()),
            refresh=imports.REFRESH_SECONDS if job["state"] in ("queued", "running") else None,
        )

    @app.get("/imports/{import_id}/report.csv")
    async def import_report(
        session: PageSession,
        import_id: uuid.UUID,
    ) -> Response:
        answer = await services.call(
            "enrolment", "GET", f"/imports/{import_id}/report.csv", session.token
        )
        if not answer.ok:
            raise HTTPException(answer.status, answer.detail)
        return Response(
            answer.content,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="laporan-{import_id}.csv"'},
        )

    # -- verification worklists (kelurahan and kecamatan officers) ---------------------------

    def level_of(session: Session) -> Literal["kelurahan", "kecamatan"]:
        allowed(session, "kelurahan_officer", "kecamatan_officer")
        return "kelurahan" if session.principal.role == "kelurahan_officer" else "kecamatan"

    async def worklist_page(
        session: Session,
        asked: Asked,
        notice: str = "",
        errors: Mapping[str, list[str]] | None = None,
        status: int = 200,
    ) -> Response:
        level = level_of(session)
        answer = await services.call(
            "verification",
            "GET",
            f"/worklists/{level}/{session.principal.area}",
            session.token,
            params={"limit": MAX_LISTED},
        )
        cases = list((answer.body or {}).get("cases", [])) if answer.ok else []
        table = listed(session.language, "worklist", cases, "daftar-kerja")
        if level == "kecamatan" and asked.export is None:
            # What the kelurahan decided and why, beside each case of the page.
            page_of = shown(table, asked.table, asked.page, {}).rows
            decided = await asyncio.gather(
                *(
                    services.call("verification", "GET", f"/cases/{c['worker_id']}", session.token)
                    for c in page_of
                )
            )
            for case, found in zip(page_of, decided, strict=True):
                case["decision"] = found.body if found.ok else None
        return listing_page(
            render,
            session,
            asked,
            "worklist.html.j2",
            [table],
            status=status,
            level=level,
            reasons=list(REJECTION_REASONS),
            notice=notice,
            errors=errors or {},
            form_key=str(uuid.uuid4()),
        )

    @app.get("/worklist", response_class=Response)
    async def worklist(session: PageSession, asked: Asking) -> Response:
        return await worklist_page(session, asked)

    @app.post("/cases/{worker_id}/decision", response_class=Response)
    async def decide(
        session: FormSession,
        worker_id: uuid.UUID,
        form_key: Annotated[str, Form(max_length=64)],
        outcome: Annotated[Literal["verify", "reject"], Form()],
        reasons: Annotated[list[RejectionReason] | None, Form(max_length=7)] = None,
        note: Annotated[str, Form(max_length=1000)] = "",
    ) -> Response:
        level_of(session)
        body: dict[str, Any] = {"note": note.strip() or None}
        if outcome == "reject":
            body["reasons"] = reasons or []
        answer = await recorded(
            session, "verification", f"/cases/{worker_id}/{outcome}", form_key, body
        )
        language = translations(session.language)
        if answer.ok:
            notice = (
                N_("Case %(worker)s verified.")
                if outcome == "verify"
                else N_("Case %(worker)s rejected.")
            )
            return await worklist_page(
                session,
                FIRST_PAGE,
                notice=language.gettext(notice) % {"worker": str(worker_id)[:8]},
            )
        at, general = by_field(answer.problems, answer.detail, language, {"reasons": "reasons"})
        errors = {str(worker_id): [*at.get("reasons", []), *general]}
        return await worklist_page(session, FIRST_PAGE, errors=errors, status=answer.status)

    # -- billing officer: the monthly run, invoices, payments, a worker's standing -------------

    async def billing_page(
        session: Session,
        asked: Asked = FIRST_PAGE,
        notice: str = "",
        run_values: Mapping[str, str] | None = None,
        pay_values: Mapping[str, str] | None = None,
        errors: Mapping[str, list[str]] | None = None,
        general: list[str] | None = None,
        standing: dict[str, Any] | None = None,
        status: int = 200,
    ) -> Response:
        allowed(session, "billing_officer")
        answer = await services.call("billing", "GET", "/invoices", session.token)
        invoices = list(answer.body or []) if answer.ok else []
        return listing_page(
            render,
            session,
            asked,
            "billing.html.j2",
            [listed(session.language, "invoices", invoices, "tagihan")],
            status=status,
            notice=notice,
            run_values=run_values or {},
            pay_values=pay_values or {},
            errors=errors or {},
            general=general or [],
            standing=standing,
            form_key=str(uuid.uuid4()),
        )

    @app.get("/billing", response_class=Response)
    async def billing(
        session: PageSession,
        asked: Asking,
        worker: Annotated[str, Query(max_length=36)] = "",
        on: Annotated[str, Query(max_length=10)] = "",
    ) -> Response:
        standing = None
        errors: dict[str, list[str]] = {}
        if worker.strip():
            try:
                worker_id = uuid.UUID(worker.strip())
            except ValueError:
                errors["worker"] = [translations(session.language).gettext("Not a worker id.")]
            else:
                day = day_or_today(on)
                answer = await services.call(
                    "billing",
                    "GET",
                    f"/workers/{worker_id}/standing",
                    session.token,
                    params={"on": day},
                )
                if answer.ok:
                    standing = answer.body
                else:
                    _, general = by_field(
                        answer.problems, answer.detail, translations(session.language), {}
                    )
                    errors["worker"] = general
        return await billing_page(session, asked, errors=errors, standing=standing)

    @app.get("/invoices/{invoice_id}", response_class=Response)
    async def invoice(
        session: PageSession,
        invoice_id: uuid.UUID,
        asked: Asking,
    ) -> Response:
        allowed(session, "billing_officer", "auditor")
        body, lines, total = await fetched(session, invoice_lines(invoice_id), {}, asked)
        language = translations(session.language)
        name = f"tagihan-{body['invoice']['period']}"
        return listing_page(
            render,
            session,
            asked,
            "invoice.html.j2",
            [listed(session.language, "invoice-lines", lines, name, total)],
            invoice=body["invoice"],
            cohort_name=lambda c: language.gettext(COHORT_NAMES.get(str(c), str(c))),
        )

    @app.get("/arrears", response_class=Response)
    async def arrears(
        session: PageSession,
        asked: Asking,
        on: Annotated[str, Query(max_length=10)] = "",
    ) -> Response:
        allowed(session, "billing_officer", "auditor")
        day = day_or_today(on)
        body, owing, total = await fetched(session, ARREARS, {"on": day}, asked)
        return listing_page(
            render,
            session,
            asked,
            "arrears.html.j2",
            [listed(session.language, "arrears", owing, f"tunggakan-{day}", total)],
            {"on": on},
            on=body["on"],
            typed_on=on,
        )

    @app.post("/billing-runs", response_class=Response)
    async def run_billing(
        session: FormSession,
        form_key: Annotated[str, Form(max_length=64)],
        period: Annotated[str, Form(max_length=7)] = "",
    ) -> Response:
        allowed(session, "billing_officer")
        answer = await recorded(
            session,
            "billing",
            "/billing-runs",
            form_key,
            {"period": period.strip()},
        )
        language = translations(session.language)
        if answer.ok:
            notice = language.gettext(
                "Invoice for %(period)s issued: %(lines)s worker-months, %(total)s."
            ) % {
                "period": answer.body["period"],
                "lines": number(answer.body["lines"], session.language),
                "total": rupiah(answer.body["total"], session.language),
            }
            return await billing_page(session, notice=notice)
        errors, general = by_field(answer.problems, answer.detail, language, {"period": "period"})
        return await billing_page(
            session,
            run_values={"period": period},
            errors=errors,
            general=general,
            status=answer.status,
        )

    @app.post("/invoices/{invoice_id}/payments", response_class=Response)
    async def pay_invoice(
        session: FormSession,
        invoice_id: uuid.UUID,
        form_key: Annotated[str, Form(max_length=64)],
        payment_ref: Annotated[str, Form(max_length=100)] = "",
        paid_on: Annotated[str, Form(max_length=10)] = "",
        amount: Annotated[str, Form(max_length=20)] = "",
    ) -> Response:
        allowed(session, "billing_officer")
        typed = {
            "invoice": str(invoice_id),
            "payment_ref": payment_ref,
            "paid_on": paid_on,
            "amount": amount,
        }
        body = payment(payment_ref, paid_on, amount)
        answer = await recorded(
            session, "billing", f"/invoices/{invoice_id}/payments", form_key, body
        )
        language = translations(session.language)
        if answer.ok:
            notice = language.gettext("Payment recorded: %(months)s worker-months paid.") % {
                "months": number(answer.body["worker_months_paid"], session.language)
            }
            return await billing_page(session, notice=notice)
        fields = {name: f"{invoice_id}-{name}" for name in ("payment_ref", "paid_on", "amount")}
        errors, general = by_field(answer.problems, answer.detail, language, fields)
        return await billing_page(
            session, pay_values=typed, errors=errors, general=general, status=answer.status
        )

    # -- claims officer: filing, the decision explained, waiting claims, payment --------------

    async def claims_page(
        session: Session,
        asked: Asked = FIRST_PAGE,
        decision: Any = None,
        notice: str = "",
        values: Mapping[str, Any] | None = None,
        errors: Mapping[str, list[str]] | None = None,
        general: list[str] | None = None,
        status: int = 200,
    ) -> Response:
        allowed(session, "claims_officer")
        answer = await services.call("claims", "GET", "/claims", session.token)
        claims = list(answer.body or []) if answer.ok else []
        language = translations(session.language)
        return listing_page(
            render,
            session,
            asked,
            "claims.html.j2",
            [listed(session.language, "claims", claims, "klaim")],
            status=status,
            waiting=[c for c in claims if c["status"] == "pending"],
            decision=decision,
            notice=notice,
            values=values or {},
            errors=errors or {},
            general=general or [],
            documents=CLAIM_DOCUMENTS,
            accident_benefits=ACCIDENT_BENEFITS,
            school_levels=SCHOOL_LEVELS,
            child_rows=range(1, CHILD_ROWS + 1),
            item_name=lambda code: language.gettext(BENEFIT_ITEMS.get(str(code), str(code))),
            claim_status=lambda s: language.gettext(CLAIM_STATUS.get(str(s), str(s))),
            form_key=str(uuid.uuid4()),
        )

    @app.get("/claims", response_class=Response)
    async def claims(session: PageSession, asked: Asking) -> Response:
        return await claims_page(session, asked)

    @app.post("/claims", response_class=Response)
    async def file_claim(
        session: FormSession,
        request: Request,
        form_key: Annotated[str, Form(max_length=64)],
    ) -> Response:
        allowed(session, "claims_officer")
        values = typed_values(await request.form(), CLAIM_DOCUMENTS)
        answer = await recorded(
            session,
            "claims",
            "/claims",
            form_key,
            claim_request(values),
        )
        language = translations(session.language)
        if answer.ok:
            return await claims_page(session, decision=answer.body)
        errors, general = by_field(answer.problems, answer.detail, language, FIELD_OF)
        return await claims_page(
            session, values=values, errors=errors, general=general, status=answer.status
        )

    @app.post("/claims/{claim_id}/payments", response_class=Response)
    async def pay_claim(
        session: FormSession,
        claim_id: uuid.UUID,
        form_key: Annotated[str, Form(max_length=64)],
        payment_ref: Annotated[str, Form(max_length=100)] = "",
        paid_on: Annotated[str, Form(max_length=10)] = "",
        amount: Annotated[str, Form(max_length=20)] = "",
    ) -> Response:
        allowed(session, "claims_officer")
        body = payment(payment_ref, paid_on, amount)
        answer = await recorded(session, "claims", f"/claims/{claim_id}/payments", form_key, body)
        language = translations(session.language)
        if answer.ok:
            notice = language.gettext("Payment of claim %(claim)s recorded.") % {
                "claim": str(claim_id)[:8]
            }
            return await claims_page(session, notice=notice)
        _, general = by_field(answer.problems, answer.detail, language, {})
        return await claims_page(session, general=general, status=answer.status)

    async def claim_page(
        session: Session,
        claim_id: uuid.UUID,
        notice: str = "",
        errors: Mapping[str, list[str]] | None = None,
        status: int = 200,
    ) -> Response:
        allowed(session, "claims_officer")
        found = await services.call("claims", "GET", f"/claims/{claim_id}", session.token)
        if not found.ok:
            raise HTTPException(found.status, found.detail)
        award = None
        if found.body["status"] in ("approved", "paid"):
            answer = await services.call(
                "claims", "GET", f"/claims/{claim_id}/award", session.token
            )
            award = answer.body if answer.ok else None
        language = translations(session.language)
        return render(
            "claim.html.j2",
            session,
            session.language,
            status,
            claim=found.body,
            award=award,
            notice=notice,
            errors=errors or {},
            item_name=lambda code: language.gettext(BENEFIT_ITEMS.get(str(code), str(code))),
            claim_status=lambda s: language.gettext(CLAIM_STATUS.get(str(s), str(s))),
            form_key=str(uuid.uuid4()),
        )

    @app.get("/claims/{claim_id}", response_class=Response)
    async def claim(
        session: PageSession,
        claim_id: uuid.UUID,
    ) -> Response:
        return await claim_page(session, claim_id)

    @app.post("/claims/{claim_id}/instalments", response_class=Response)
    async def approve_instalment(
        session: FormSession,
        claim_id: uuid.UUID,
        form_key: Annotated[str, Form(max_length=64)],
        child: Annotated[str, Form(max_length=16)] = "",
        school_year: Annotated[str, Form(max_length=9)] = "",
        married: Annotated[Literal["", "yes"], Form()] = "",
        working: Annotated[Literal["", "yes"], Form()] = "",
    ) -> Response:
        allowed(session, "claims_officer")
        body = {
            "child": child,
            "school_year": school_year,
            "married": married == "yes",
            "working": working == "yes",
        }
        answer = await recorded(
            session, "claims", f"/claims/{claim_id}/instalments", form_key, body
        )
        language = translations(session.language)
        if answer.ok:
            notice = language.gettext("School year %(year)s approved for %(child)s.") % {
                "year": school_year,
                "child": child,
            }
            return await claim_page(session, claim_id, notice=notice)
        _, general = by_field(answer.problems, answer.detail, language, {})
        return await claim_page(
            session, claim_id, errors={f"{child}-{school_year}": general}, status=answer.status
        )

    # -- city administrator: budgets, counters, designation, the decree annex ---------------

    async def people(session: Session, worker_ids: list[str]) -> list[dict[str, Any]]:
        """Each worker's name and NIK as the enrolment service shows them to this user's role
        (empty for one it does not show)."""
        seen = await asyncio.gather(
            *(services.call("enrolment", "GET", f"/workers/{w}", session.token) for w in worker_ids)
        )
        return [(found.body or {}).get("personal") or {} if found.ok else {} for found in seen]

    async def city_page(
        session: Session,
        year: int,
        asked: Asked = FIRST_PAGE,
        notice: str = "",
        values: Mapping[str, str] | None = None,
        errors: Mapping[str, list[str]] | None = None,
        general: list[str] | None = None,
        refused: list[dict[str, Any]] | None = None,
        status: int = 200,
    ) -> Response:
        allowed(session, "city_admin")
        # Designated and committed as the verification service counts them for the next
        # designation (every one made, by anyone, is in them as soon as it is recorded); the
        # allocation as the billing service reports it, which has read every allocation made.
        # The cases ready for designation one page at a time, as the service pages them.
        counted, budget, (_, cases, total) = await asyncio.gather(
            services.call("verification", "GET", f"/designations/{year}/counters", session.token),
            services.call("billing", "GET", f"/budgets/{year}", session.token),
            fetched(session, READY, {}, asked),
        )
        for answer in (counted, budget):
            if not answer.ok:
                raise HTTPException(answer.status, answer.detail)
        allocated = {c["cohort"]: c["allocated"] for c in budget.body["cohorts"]}
        counters = []
        for counter in counted.body["cohorts"]:
            cohort_allocated = max(counter["allocated"], allocated.get(counter["cohort"], 0))
            counters.append(
                counter
                | {
                    "allocated": cohort_allocated,
                    "budget_left": cohort_allocated - counter["committed"],
                }
            )
        if asked.export is None:
            for case, personal in zip(
                cases, await people(session, [c["worker_id"] for c in cases]), strict=True
            ):
                case["full_name"] = personal.get("full_name", "")
        return listing_page(
            render,
            session,
            asked,
            "city.html.j2",
            [listed(session.language, "worklist", cases, "siap-ditetapkan", total)],
            {"year": str(year)},
            status,
            year=year,
            counters=counters,
            notice=notice,
            values=values or {},
            errors=errors or {},
            general=general or [],
            refused=refused or [],
            form_key=str(uuid.uuid4()),
        )

    @app.get("/city", response_class=Response)
    async def city(
        session: PageSession,
        asked: Asking,
        year: Annotated[int, Query(ge=2022, le=2100)] = 2024,
    ) -> Response:
        return await city_page(session, year, asked)

    @app.post("/budgets", response_class=Response)
    async def allocate(
        session: FormSession,
        form_key: Annotated[str, Form(max_length=64)],
        fiscal_year: Annotated[int, Form(ge=2022, le=2100)],
        source: Annotated[Literal["APBD", "APBD-P"], Form()],
        cohort: Annotated[Literal["regular", "incidental"], Form()],
        amount: Annotated[str, Form(max_length=24)] = "",
    ) -> Response:
        allowed(session, "city_admin")
        allocated = rupiahs(amount)
        body = {"fiscal_year": fiscal_year, "source": source, "cohort": cohort, "amount": allocated}
        answer = await recorded(session, "billing", "/budgets", form_key, body)
        language = translations(session.language)
        if answer.ok:
            notice = language.gettext("Allocated %(amount)s to the %(cohort)s cohort.") % {
                "amount": rupiah(allocated, session.language),
                "cohort": language.gettext(COHORT_NAMES[cohort]),
            }
            return await city_page(session, fiscal_year, notice=notice)
        errors, general = by_field(
            answer.problems, answer.detail, language, {"amount": "budget-amount"}
        )
        return await city_page(
            session,
            fiscal_year,
            values={"budget-amount": amount},
            errors=errors,
            general=general,
            status=answer.status,
        )

    @app.post("/designations", response_class=Response)
    async def designate(
        session: FormSession,
        form_key: Annotated[str, Form(max_length=64)],
        fiscal_year: Annotated[int, Form(ge=2022, le=2100)],
        cohort: Annotated[Literal["regular", "incidental"], Form()],
        page: Annotated[int, Form(ge=1, le=MAX_PAGE)] = 1,
        # The cases chosen on the page shown: a page holds no more.
        worker_id: Annotated[list[uuid.UUID] | None, Form(max_length=PAGE_SIZE)] = None,
        cover_months: Annotated[str, Form(max_length=2)] = "",
        coverage_start: Annotated[str, Form(max_length=10)] = "",
        decree_ref: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        allowed(session, "city_admin")
        typed = {
            "cover_months": cover_months,
            "coverage_start": coverage_start,
            "decree_ref": decree_ref,
        }
        language = translations(session.language)
        chosen = list(dict.fromkeys(worker_id or []))
        if not chosen:
            errors = {"chosen": [language.gettext("Choose at least one worker.")]}
            return await city_page(
                session, fiscal_year, Asked(page), values=typed, errors=errors, status=422
            )
        body = {
            "worker_ids": [str(w) for w in chosen],
            "cohort": cohort,
            "cover_months": int(cover_months) if cover_months.isdigit() else 0,
            "coverage_start": iso_date(coverage_start.strip()),
            "fiscal_year": fiscal_year,
            "decree_ref": decree_ref.strip(),
        }
        # In the order chosen (the page's order, oldest first): each within the quota and the
        # budget those before it left. The form's key makes a resubmitted form record nothing
        # again: the service answers its first answer.
        answer = await recorded(session, "verification", "/cases/designate", form_key, body)
        if not answer.ok:
            fields = {n: n for n in ("cover_months", "coverage_start", "decree_ref")}
            errors, general = by_field(answer.problems, answer.detail, language, fields)
            return await city_page(
                session,
                fiscal_year,
                Asked(page),
                values=typed,
                errors=errors,
                general=general,
                status=answer.status,
            )
        refused = [o for o in answer.body["outcomes"] if not o["designated"]]
        for outcome, personal in zip(
            refused, await people(session, [o["worker_id"] for o in refused]), strict=True
        ):
            outcome["full_name"] = personal.get("full_name", "")
            outcome["reasons"] = [
                translated(m, language)
                for m in [p["message"] for p in outcome["problems"]] or [outcome["detail"]]
            ]
        notice = language.gettext(
            "%(designated)s of %(chosen)s workers designated into the %(cohort)s cohort."
        ) % {
            "designated": number(answer.body["designated"], session.language),
            "chosen": number(len(chosen), session.language),
            "cohort": language.gettext(COHORT_NAMES[cohort]),
        }
        return await city_page(
            session,
            fiscal_year,
            Asked(page),
            notice=notice,
            values=typed if refused else {},
            refused=refused,
        )

    @app.get("/decree-annex.{kind}")
    async def decree_annex(
        session: PageSession,
        kind: Literal["pdf", "xlsx", "csv"],
        year: Annotated[int, Query(ge=2022, le=2100)] = 2024,
        cohort: Annotated[Literal["regular", "incidental"], Query()] = "regular",
    ) -> Response:
        allowed(session, "city_admin")
        listed = await services.call(
            "verification",
            "GET",
            "/designations",
            session.token,
            params={"fiscal_year": year, "cohort": cohort},
        )
        if not listed.ok:
            raise HTTPException(listed.status, listed.detail)
        workers = list((listed.body or {}).get("workers", []))[:MAX_LISTED]
        seen = await people(session, [w["worker_id"] for w in workers])
        language = translations(session.language)
        header = columns(language, "decree-annex")
        rows = []
        for number_, (w, personal) in enumerate(zip(workers, seen, strict=True), start=1):
            rows.append(
                [
                    str(number_),
                    str(personal.get("full_name", "")),
                    str(personal.get("nik", "")),
                    kelurahan_name(w.get("kelurahan_code")),
                    kecamatan_name(w.get("kecamatan_code")),
                    str(w["cover_months"]),
                    long_date(w["coverage_start"], session.language),
                ]
            )
        title = language.gettext("Annex to the decree: the %(cohort)s cohort of %(year)s") % {
            "cohort": language.gettext(COHORT_NAMES[cohort]),
            "year": year,
        }
        name = f"lampiran-sk-{cohort}-{year}"
        if kind == "pdf":
            decree = workers[0]["decree_ref"] if workers else ""
            return Response(
                exports.annex_pdf(title, decree, header, rows),
                media_type="application/pdf",
                headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'},
            )
        return exports.download(header, rows, kind, name)

    return app


# A row of each download, as the page shows it: ``language`` translates the words, ``lang``
# writes the amounts and dates.
def worker_row(w: dict[str, Any], language: gettext.NullTranslations, lang: Language) -> list[str]:
    return [
        str((w.get("personal") or {}).get("full_name", "")),
        str((w.get("personal") or {}).get("nik", "")),
        occupation_name(w.get("occupation_code"), lang),
        language.gettext(STATUS_NAMES.get(w["status"], w["status"])),
        long_date(w.get("coverage_start"), lang),
    ]


def case_row(c: dict[str, Any], language: gettext.NullTranslations, lang: Language) -> list[str]:
    return [
        str(c["worker_id"]),
        kelurahan_name(c.get("kelurahan_code")),
        instant(c.get("registered_at"), lang),
    ]


def invoice_row(i: dict[str, Any], language: gettext.NullTranslations, lang: Language) -> list[str]:
    return [
        i["period"],
        language.gettext("yes") if i["supplementary"] else language.gettext("no"),
        number(i["lines"], lang),
        rupiah(i["total"], lang),
        instant(i["issued_at"], lang),
        long_date(i.get("paid_on"), lang),
        i.get("payment_ref") or "",
    ]


def invoice_line_row(
    line: dict[str, Any], language: gettext.NullTranslations, lang: Language
) -> list[str]:
    return [
        str(line["worker_id"]),
        line["period"],
        language.gettext(COHORT_NAMES.get(line["cohort"], line["cohort"])),
        rupiah(line["amount"], lang),
        long_date(line.get("paid_on"), lang),
        language.gettext("yes") if line["cancelled"] else language.gettext("no"),
    ]


def arrears_row(w: dict[str, Any], language: gettext.NullTranslations, lang: Language) -> list[str]:
    return [
        str(w["standing"]["worker_id"]),
        language.gettext(STANDINGS[w["standing"]["status"]]),
        ", ".join(w["standing"]["arrears"]),
        rupiah(w["owed"], lang),
        w["standing"]["last_paid"] or "",
    ]


def claim_row(c: dict[str, Any], language: gettext.NullTranslations, lang: Language) -> list[str]:
    return [
        str(c["claim_id"]),
        str(c["worker_id"]),
        c["benefit"],
        long_date(c["incident_date"], lang),
        language.gettext(CLAIM_STATUS.get(c["status"], c["status"])),
        rupiah(c.get("total"), lang),
    ]


# How each download writes a row of what is listed.
ROWS: dict[str, Callable[[dict[str, Any], gettext.NullTranslations, Language], list[str]]] = {
    "workers": worker_row,
    "worklist": case_row,
    "invoices": invoice_row,
    "invoice-lines": invoice_line_row,
    "arrears": arrears_row,
    "claims": claim_row,
}


def listed(
    lang: Language,
    download: str,
    items: list[dict[str, Any]],
    filename: str,
    total: int | None = None,
) -> Table:
    """A listing of the services' items as its page draws them and its download writes them, in
    the user's language (``total``: the service paged it, ``items`` are the page asked for)."""
    language = translations(lang)
    row = ROWS[download]
    return Table(
        download,
        "",
        columns(language, download),
        items,
        cells=lambda item: row(item, language, lang),
        total=total,
        filename=filename,
    )


def columns(language: gettext.NullTranslations, download: str) -> list[str]:
    """A download's column names in the user's language."""
    return [language.gettext(name) for name in COLUMNS[download]]


def browser_address(host: str) -> str:
    """The address a browser's waiting sign-ins are counted under: an IPv6 address by its /64,
    the network one home or office is given (it would otherwise hold countless addresses)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def kept_fields(fields: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(element id, name, value) of a form's fields to draw again: a name sent more than once
    keeps every value, each under an id of its own."""
    seen: dict[str, int] = {}
    kept = []
    for name, value in fields:
        seen[name] = seen.get(name, 0) + 1
        suffix = f"-{seen[name]}" if seen[name] > 1 else ""
        kept.append((f"kept-{name}{suffix}", name, value))
    return kept


def payment(payment_ref: str, paid_on: str, amount: str) -> dict[str, Any]:
    """A payment's request (an invoice's or a claim's) from its form."""
    return {
        "payment_ref": payment_ref.strip(),
        "paid_on": iso_date(paid_on.strip()),
        "amount": rupiahs(amount),
    }


def set_cookie(
    response: Response,
    name: str,
    value: str,
    max_age: int | None = None,
    same_site: Literal["strict", "lax"] = "strict",
) -> None:
    """The sign-in and language cookies are Lax (the first must come back with the provider's
    answer, a navigation from another site); the session cookie is Strict."""
    response.set_cookie(
        name, value, max_age=max_age, secure=True, httponly=True, samesite=same_site, path="/"
    )


def delete_cookie(response: Response, name: str) -> None:
    response.delete_cookie(name, secure=True, httponly=True, samesite="strict", path="/")
