"""Exception types: one for user mistakes, one for bugs in the workbench, one for a cancel."""


class WorkbenchError(Exception):
    """A problem with what the user asked for or gave us (file, tensor, setting).

    The message names the file or tensor and says what was expected. The CLI and
    the UI show it as-is, without a traceback.
    """


class StaleError(WorkbenchError):
    """Saved statistics or a calibration cache belong to another model or data set."""


class Cancelled(Exception):
    """The user cancelled a long-running operation (neither a mistake nor a bug; named so that
    it does not shadow ``concurrent.futures.CancelledError``). ``partial`` may hold what was done."""


class InternalError(Exception):
    """A bug in the workbench itself (an invariant that should always hold did not)."""
