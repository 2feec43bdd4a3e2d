"""The one exception type the CLI turns into a one-line error and a non-zero exit."""


class GancliError(Exception):
    """A user-facing failure: bad input, missing data, a corrupt checkpoint. The message is one line.

    fields: the config fields whose values caused it, for a check that needs more than the config (the data's
    shape, say): the CLI names the --config file when the file set one of them (config.named_in_file)."""

    def __init__(self, *args, fields: tuple[str, ...] = ()):
        super().__init__(*args)
        self.fields = fields


class FetchError(GancliError):
    """The package registry could not be reached or did not answer in time: the network, not the data."""
