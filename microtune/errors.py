"""User-facing errors.

Every problem with what a user handed us (a file, a folder, a YAML field, a CLI value) is raised
as :class:`MicrotuneError` whose message is one sentence naming the file or field and the problem.
The CLI prints that sentence and exits non-zero; library callers can catch it.
"""


class MicrotuneError(Exception):
    """Bad input or an unmet precondition, described in one sentence."""


class DatasetError(MicrotuneError):
    """A dataset directory or a source image is missing, malformed or inconsistent."""
