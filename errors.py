"""ptocr's own error type: a message for the user and the exit code the CLI returns."""


class PtocrError(Exception):
    """An expected failure with a one-line message (bad input, parity failure, ...)."""

    exit_code = 2

    def __init__(self, message, exit_code=None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class FormatError(PtocrError):
    """An input file is not what it claims to be (truncated, corrupt, hostile)."""


class MappingError(PtocrError):
    """The weights do not fit the architecture."""


class ParityError(PtocrError):
    """The converted model does not compute what the Paddle model computes."""

    exit_code = 1
