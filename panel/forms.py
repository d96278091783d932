"""The web forms' one answer to bad input: the page that holds the form, rendered again with that form
bound (the user's input kept, each error beside its field, a refusal at the top) and HTTP 400.

Success keeps POST/redirect/GET. A refusal of the service layer (tasks.services.TaskError and its
kin) becomes the form's error and keeps its status: 409 where the state conflicts (the container is
locked or running, a quota or the host is full), 403 where the user may see the object but not do
this with it (a bridge they were not granted, an address outside their pools), else 400. One that
says 404 (the object went away meanwhile) is raised as Http404: there is no page left to show.
Who may not open a page or see an object still gets 403/404 from the lookups, before any form.
An htmx request that gets the page back keeps the address bar where it was (the form's page, not
the POST's URL)."""
from __future__ import annotations

from typing import Callable

from django import forms
from django.http import Http404, HttpRequest, HttpResponse

from accounts.tokens import TokenRefused
from panel.uploads import UploadRefused
from tasks.services import TaskError

REFUSALS = (TaskError, TokenRefused, UploadRefused)
FORM_ERROR_STATUSES = (400, 403, 409)


def add_capacity_override(form: forms.Form, user, what: str) -> None:
    """The administrators' override of the host's promise policy, on the form of an operation the
    policy can refuse (`what`: "create", "restore", ...). Nobody else gets the field, and the service
    refuses anyone else's override again."""
    from accounts.permissions import is_admin
    if is_admin(user):
        form.fields["override_capacity"] = forms.BooleanField(
            required=False, label=f"{what.capitalize()} even if the host is short of room",
            help_text="Administrators: promise past the host's RAM, CPU or disk policy (recorded in the audit log).")


class ActionForm(forms.Form):
    """The form of a button without input (start, revoke, run now): a place for its refusal."""


class TypeNameToConfirmForm(forms.Form):
    """A form that destroys something: the user types its name, `expected`, to confirm."""

    confirm = forms.CharField(max_length=100)
    what = "name"  # "the job's name", ...

    def __init__(self, expected: str, data=None):
        super().__init__(data)
        self.expected = expected
        self.fields["confirm"].label = f"Type {self.what} to confirm"

    def clean_confirm(self) -> str:
        if self.cleaned_data["confirm"].strip() != self.expected:
            raise forms.ValidationError(f"Type {self.what}, {self.expected}, to confirm.")
        return self.cleaned_data["confirm"]


def refuse(form: forms.Form, exc: Exception) -> int:
    """Put a service's refusal on `form` (on the field it names, else at the top) and return the status
    to answer with: the refusal's own 400, 403 or 409, else 400. A 404 is raised, not shown."""
    status = getattr(exc, "http_status", 400)
    if status == 404:
        raise Http404(str(exc)) from None
    field = getattr(exc, "field", None)
    form.add_error(field if field in form.fields else None, str(exc))
    return status if status in FORM_ERROR_STATUSES else 400


def form_response(request: HttpRequest, form: forms.Form, act: Callable[[forms.Form], HttpResponse],
                  page: Callable[[forms.Form, int], HttpResponse]) -> HttpResponse:
    """Validate `form`; if it is valid, `act(form)` does the work and answers (a redirect).
    Invalid input, or a refusal `act` raises, answers `page(form, status)`: the page again with this
    form bound, 400 (or the refusal's 403 or 409)."""
    if form.is_valid():
        try:
            return act(form)
        except REFUSALS as exc:
            status = refuse(form, exc)
    else:
        status = 400
    return form_page(request, page(form, status))


def form_page(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """A page answering a form in error: an htmx request keeps its address (not the POST's URL)."""
    if request.headers.get("HX-Request"):
        response["HX-Push-Url"] = "false"
    return response


def wants_fragment(request: HttpRequest) -> bool:
    """An htmx poll asking for its fragment, not a boosted form or link that wants the whole page."""
    return bool(request.headers.get("HX-Request")) and not request.headers.get("HX-Boosted")


class FormErrorStatus:
    """For Django's class-based form views (login, password change and reset): a form in error
    answers 400, like every other form of the panel."""

    def form_invalid(self, form):
        response = super().form_invalid(form)
        response.status_code = 400
        return response
