"""The OpenAPI schema generator: documents the error answers every API view can give.

DRF answers 401/403 (credentials), 404 (unknown id or page), 400/413/415 (bad, oversized or
non-JSON bodies) and 429 (throttled) around any view; the schema says so, so clients and the
schemathesis run in the test suite can rely on it.
"""

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema

ERROR_BODY = {
    "type": "object",
    "description": 'Usually {"detail": "..."}; field errors are {field: ["message", ...]}.',
    "additionalProperties": {},
}
ERRORS = {
    "400": "Invalid input: field or filter errors, or JSON that cannot be parsed.",
    "401": "No or an unknown API token.",
    "403": "The token's user may not do this.",
    "404": "No such object, or no such page.",
    "413": "The request body is larger than DATA_UPLOAD_MAX_MEMORY_SIZE.",
    "415": "The body is not JSON.",
    "429": "Too many requests; see the Retry-After header.",
}


class AutoSchema(SpectacularAutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code in self._error_codes():
            responses.setdefault(
                code,
                {
                    "description": ERRORS[code],
                    "content": {"application/json": {"schema": ERROR_BODY}},
                },
            )
        return responses

    def _error_codes(self) -> list[str]:
        codes = ["429"]
        if self.view.get_authenticators():
            codes += ["401", "403"]
        if "{" in self.path or self._is_list_view():
            codes.append("404")
        if self.method in ("POST", "PUT", "PATCH"):
            codes += ["400", "413", "415"]
        elif self._is_list_view() and getattr(self.view, "filterset_class", None):
            codes.append("400")
        return codes
