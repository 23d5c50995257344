"""The routing shown in docs/routing.rst."""

# docs: start
from tests.docs_examples.consumers import word_count

channel_routing = {
    # A dotted path, imported when the backend first needs its routing...
    "chat.log": "tests.docs_examples.consumers.log_line",
    # ...or the consumer itself.
    "text.count": word_count,
}
# docs: end
