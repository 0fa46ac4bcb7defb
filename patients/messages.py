"""Text a person reads, as the rules write it: marked for translation, never formatted with data.

The rules know nothing of HTTP or of the request's language. They write a message as a template
marked with `N_` (so the catalog extractor finds it), with `%(name)s` placeholders and the values
passed beside it; the web layer translates the template for the request and fills it in.
"""


def N_(message: str) -> str:
    """Mark `message` for the translation catalog; it is translated where it is rendered."""
    return message


class Rejected(Exception):
    """A rule refused its input: the contract's error code, a message and its details.

    `message` is an N_-marked template filled with `params`; `details` goes to the client as it
    is (its `reason` strings are templates too, filled with their own `params`).
    """

    def __init__(self, code: str, message: str, details=None, **params):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.params = params
