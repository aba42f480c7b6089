"""haystack-dewey test settings: the tests run offline, so Haystack's usage telemetry stays off."""

import os

# Read once when haystack is first imported; set before any test module imports it.
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
