"""The one error type of the converter: its message is the single line the tool prints."""


class ConvertError(Exception):
    pass
