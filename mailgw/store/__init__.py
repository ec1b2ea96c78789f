"""The durable store: models, sessions, migrations."""

from mailgw.store.db import Store
from mailgw.store.models import (
    Account,
    Attempt,
    Base,
    ContactGroup,
    Delivery,
    GroupMember,
    Job,
    OutboxMail,
    ProcessedMessage,
    SenderAddress,
    utcnow,
)

__all__ = ["Account", "Attempt", "Base", "ContactGroup", "Delivery", "GroupMember", "Job",
           "OutboxMail", "ProcessedMessage", "SenderAddress", "Store", "utcnow"]
