"""django-tenants' tenant and domain models, as its documentation sets them up."""

from django.db import models
from django_tenants.models import DomainMixin, TenantMixin


class Client(TenantMixin):
    name = models.CharField(max_length=200)
    created_on = models.DateField(auto_now_add=True)

    auto_create_schema = True  # saving a new tenant creates its schema and runs its migrations


class Domain(DomainMixin):
    pass
