import pytest

from tenantry import Status
from tenantry.core.model import check_transition
from tenantry.errors import InvalidTransition


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (Status.PROVISIONING, Status.ACTIVE),
        (Status.ACTIVE, Status.SUSPENDED),
        (Status.SUSPENDED, Status.ACTIVE),
        (Status.ACTIVE, Status.ARCHIVED),
        (Status.SUSPENDED, Status.ARCHIVED),
        (Status.ARCHIVED, Status.ACTIVE),
        (Status.ARCHIVED, Status.DELETED),
        (Status.ACTIVE, Status.MOVING),
        (Status.MOVING, Status.ACTIVE),
    ],
)
def test_allowed(current: Status, target: Status) -> None:
    check_transition("acme", current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (Status.DELETED, Status.ACTIVE),
        (Status.DELETED, Status.ARCHIVED),
        (Status.PROVISIONING, Status.SUSPENDED),
        (Status.MOVING, Status.SUSPENDED),
        (Status.ARCHIVED, Status.SUSPENDED),
    ],
)
def test_forbidden(current: Status, target: Status) -> None:
    with pytest.raises(InvalidTransition, match="acme"):
        check_transition("acme", current, target)
