"""The one exception type the CLI turns into a one-line error and a non-zero exit."""


class GancliError(Exception):
    """A user-facing failure: bad input, missing data, a corrupt checkpoint. The message is one line."""


class FetchError(GancliError):
    """The package registry could not be reached or did not answer in time: the network, not the data."""
