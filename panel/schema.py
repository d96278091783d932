"""The OpenAPI schema (/api/schema/): every operation documents the error answers it can give,
with their bodies, besides what drf-spectacular finds on its own."""
from __future__ import annotations

from drf_spectacular.openapi import AutoSchema

# For OpenApiParameter(extensions=...): a filter given empty (`?status=`) means no filter, as on the web.
# drf-spectacular takes only "x-" extensions; PanelAutoSchema turns it into OpenAPI's allowEmptyValue.
EMPTY_MEANS_ANY = {"x-empty-means-any": True}


def text_filter(name: str, max_length: int, description: str):
    """A list's text filter in the schema as its filterset checks it: at most `max_length` characters,
    no NUL (Django's form fields refuse it); empty means any."""
    from drf_spectacular.utils import OpenApiParameter
    return OpenApiParameter(name, {"type": "string", "maxLength": max_length, "pattern": "^[^\\u0000]*$"},
                            description=description, extensions=EMPTY_MEANS_ANY)

ERROR = {"$ref": "#/components/schemas/Error"}
VALIDATION_ERROR = {"$ref": "#/components/schemas/ValidationError"}

# Added to the components by add_error_components (a postprocessing hook in SPECTACULAR_SETTINGS).
ERROR_COMPONENTS = {
    "Error": {
        "type": "object",
        "description": "A refusal: one line for the user.",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
    },
    "ValidationError": {
        "type": "object",
        "description": 'Bad input: the messages by field name ("non_field_errors" for the request as a whole), '
                       'or {"detail": message} (with "errors" by field where the request was malformed).',
        "properties": {"detail": {"type": "string"}, "errors": {"type": "object"}},
        "additionalProperties": {"oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "object"}]},
    },
}

ERROR_DESCRIPTIONS = {
    "400": "Bad input; nothing changed.",
    "401": "No credentials, or a token that is unknown, expired or revoked.",
    "403": "Signed in, but not allowed (the role, a read-only view of the object, or a second factor owed).",
    "404": "No such object, or one the caller may not see.",
    "409": "Refused by the object's state: locked by another task, a quota, a conflicting name.",
}


class PanelAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema, with the 4xx answers each operation can give."""

    def _get_parameters(self):
        parameters = super()._get_parameters()
        for parameter in parameters:
            if parameter.pop("x-empty-means-any", False):
                parameter["allowEmptyValue"] = True
        return parameters

    def _error_codes(self) -> list[str]:
        codes = ["401", "403"]  # every operation needs a signed-in caller with the right role
        takes_input = self.method in ("POST", "PUT", "PATCH", "DELETE") or any(
            p.get("in") == "query" for p in self._get_parameters())
        if takes_input:
            codes.append("400")
        if "{" in self.path:
            codes.append("404")
        if self.method != "GET":
            codes.append("409")  # a TaskError (tasks.services) answers 409 unless it says otherwise
        return sorted(codes)

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction == "response":
            for code in self._error_codes():
                body = VALIDATION_ERROR if code == "400" else ERROR
                responses.setdefault(code, {"description": ERROR_DESCRIPTIONS[code],
                                            "content": {"application/json": {"schema": body}}})
        return responses


def add_error_components(result, generator, request, public):
    """Postprocessing hook: the error bodies the operations refer to."""
    result.setdefault("components", {}).setdefault("schemas", {}).update(ERROR_COMPONENTS)
    return result
