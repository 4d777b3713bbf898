"""Exception types: one for user mistakes, one for bugs in the workbench."""


class WorkbenchError(Exception):
    """A problem with what the user asked for or gave us (file, tensor, setting).

    The message names the file or tensor and says what was expected. The CLI and
    the UI show it as-is, without a traceback.
    """


class StaleError(WorkbenchError):
    """Saved statistics or a calibration cache belong to another model or data set."""


class CancelledError(WorkbenchError):
    """The user cancelled a long-running operation."""


class InternalError(Exception):
    """A bug in the workbench itself (an invariant that should always hold did not)."""
