"""mailgw: send faxes and voice messages by email, get delivery notices back."""

__version__ = "0.1.0"
