"""Sessions for scripts/fuzz-api's schemathesis runs (SCHEMATHESIS_HOOKS).

With FUZZ_EMAIL and FUZZ_PASSWORD set, every request carries a session of
that account, opened by logging in; a 401 (a logout, a password change)
makes the next request log in again. DELETE /v1/me erases whoever sends it,
so each of its requests comes from a customer registered for it alone.
Without FUZZ_EMAIL the requests are a guest's.
"""

import os
import uuid

import requests
import schemathesis

COMMAND_API = os.environ.get("FUZZ_COMMAND_API", "http://127.0.0.1:18080")
EMAIL = os.environ.get("FUZZ_EMAIL")
PASSWORD = os.environ.get("FUZZ_PASSWORD")
TIMEOUT = 30


def log_in(email, password):
    response = requests.post(
        f"{COMMAND_API}/v1/sessions",
        json={"email": email, "password": password},
        timeout=TIMEOUT,
    )
    response.raise_for_status()
    return response.json()["token"]


def bear(case, token):
    case.headers = case.headers or {}
    case.headers["Authorization"] = f"Bearer {token}"


if EMAIL:

    @schemathesis.auth().skip_for(method="DELETE", path="/v1/me")
    class Account:
        def get(self, case, context):
            return log_in(EMAIL, PASSWORD)

        def set(self, case, data, context):
            bear(case, data)

    @schemathesis.auth(refresh_interval=None).apply_to(method="DELETE", path="/v1/me")
    class DisposableCustomer:
        def get(self, case, context):
            email = f"erase-{uuid.uuid4().hex}@fuzz.test"
            password = "a disposable fuzz passphrase"
            response = requests.post(
                f"{COMMAND_API}/v1/users",
                json={"email": email, "password": password, "first_name": "Fuzz", "last_name": "Erased"},
                timeout=TIMEOUT,
            )
            response.raise_for_status()
            return log_in(email, password)

        def set(self, case, data, context):
            bear(case, data)
