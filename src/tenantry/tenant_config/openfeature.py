"""An OpenFeature provider that serves tenantry's flags (needs ``tenantry[openfeature]``).

Apps then use the standard API::

    from openfeature import api
    from openfeature.evaluation_context import EvaluationContext
    from tenantry import TenantryProvider

    api.set_provider(TenantryProvider(tn))
    client = api.get_client()
    with tn.tenant("acme"):
        client.get_boolean_value("new-editor", False)
        client.get_string_value("theme", "light", EvaluationContext(targeting_key=user_id))

The tenant is the one bound to the context. Without one, the evaluation context's ``tenant``
attribute (slug or id) names it; with one, a ``tenant`` attribute naming another tenant is an
error rather than a way around the binding. ``targeting_key`` is the user (per-user rollouts);
other attributes are visible to rules. Evaluations come from the process's cache.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import FlagNotFoundError, InvalidContextError, TypeMismatchError
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata

from tenantry import context
from tenantry.errors import FlagNotFound, NoTenantBound, TenantNotFound

if TYPE_CHECKING:
    from tenantry.tenant_config.flags import Flags

__all__ = ["TenantryProvider"]


class HasFlags(Protocol):
    """What the provider needs: ``flags`` (a :class:`~tenantry.Tenantry` has them)."""

    @property
    def flags(self) -> Flags: ...


_REASONS = {
    "DISABLED": Reason.DISABLED,
    "TARGETING_MATCH": Reason.TARGETING_MATCH,
    "SPLIT": Reason.SPLIT,
    "DEFAULT": Reason.DEFAULT,
}


class TenantryProvider(AbstractProvider):
    """Resolves OpenFeature flag evaluations with ``tn.flags`` for the bound tenant."""

    def __init__(self, tn: HasFlags) -> None:
        super().__init__()
        self._tn = tn

    def get_metadata(self) -> Metadata:
        return Metadata(name="tenantry")

    def _tenant(self, named: Any) -> str | uuid.UUID | None:
        bound = context.current()
        if named is None:
            if bound is None:
                raise InvalidContextError(
                    "no tenant: evaluate inside `with tn.tenant(...)`, or pass the 'tenant' attribute"
                )
            return None
        if not isinstance(named, str):
            raise InvalidContextError("the 'tenant' attribute must be a tenant's slug or id")
        if bound is not None and named not in (bound.slug, str(bound.id)):
            raise InvalidContextError(f"the 'tenant' attribute names another tenant than the bound one ({bound.slug})")
        return named

    def _resolve(
        self, key: str, evaluation_context: EvaluationContext | None, fits: type | tuple[type, ...], kind: str
    ) -> FlagResolutionDetails[Any]:
        attributes: dict[str, Any] = dict(evaluation_context.attributes) if evaluation_context else {}
        tenant = self._tenant(attributes.pop("tenant", None))
        user = evaluation_context.targeting_key if evaluation_context else None
        try:
            result = self._tn.flags.evaluate(key, user=user or None, attributes=attributes or None, tenant=tenant)
        except FlagNotFound as err:
            raise FlagNotFoundError(str(err)) from err
        except (TenantNotFound, NoTenantBound) as err:
            raise InvalidContextError(str(err)) from err
        value: Any = result.value
        if isinstance(value, bool) != (fits is bool) or not isinstance(value, fits):
            raise TypeMismatchError(f"flag {key!r} serves {type(value).__name__} values, not {kind}")
        if fits == (int, float):
            value = float(result.value)
        metadata = {} if result.rule is None else {"rule": result.rule}
        return FlagResolutionDetails(
            value=value, variant=result.variant, reason=_REASONS[result.reason], flag_metadata=metadata
        )

    def resolve_boolean_details(
        self, flag_key: str, default_value: bool, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[bool]:
        return self._resolve(flag_key, evaluation_context, bool, "booleans")

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._resolve(flag_key, evaluation_context, str, "strings")

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._resolve(flag_key, evaluation_context, int, "integers")

    def resolve_float_details(
        self, flag_key: str, default_value: float, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[float]:
        return self._resolve(flag_key, evaluation_context, (int, float), "numbers")

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        return self._resolve(flag_key, evaluation_context, (dict, list), "objects")
