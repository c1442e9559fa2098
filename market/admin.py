"""Admin for markets and booths, for superusers and for the operators of each market.

Who operates a market is the relation tuple `market:<id>#operator` (market/roles.py):
a staff user sees and changes a market, and its booths, exactly while holding it, as on
the dashboard. Superusers choose a market's operators on its page. A booth's creator,
set on the booth's page, in the market's list of booths or with the "Make a user the
creator" action, gets what a creator needs through `booth_creator_set`. Who may read or
write assets is not decided here: that is the relation engine's (market.rebac).
"""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.contrib.auth import get_user_model
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from market.models import Booth, Market
from market.rebac.models import RelationTuple
from market.roles import booth_creator_set, market_operators, market_operators_set, markets_operated


class OperatorObjectAdmin(admin.ModelAdmin):
    """Staff see and change only what belongs to the markets they operate."""

    market_lookup = "pk"  # how this model's rows name their market's id

    def _market_id(self, obj: Model) -> int:
        return int(
            obj.pk if self.market_lookup == "pk" else getattr(obj, f"{self.market_lookup}_id")
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{f"{self.market_lookup}__in": markets_operated(request.user)})

    def _operates(self, request: HttpRequest, obj: Model | None) -> bool:
        user = request.user
        if user.is_superuser:
            return True
        if not (user.is_active and user.is_staff):
            return False
        operated = markets_operated(user)
        return bool(operated) if obj is None else self._market_id(obj) in operated

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._operates(request, None)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._operates(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._operates(request, obj)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return bool(request.user.is_superuser)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return bool(request.user.is_superuser)


class BoothInline(admin.TabularInline):
    model = Booth
    extra = 0

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return bool(request.user.is_superuser)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return bool(request.user.is_superuser)


class MarketFieldsForm(forms.ModelForm):
    """A market's own fields: what its operators may change."""

    class Meta:
        model = Market
        fields = ["name", "slug", "width_x_m", "depth_z_m", "height_y_m"]


class MarketForm(MarketFieldsForm):
    """A market with its operators (relation tuples, not a column): for superusers."""

    operators = forms.ModelMultipleChoiceField(
        queryset=get_user_model().objects.order_by("username"),
        required=False,
        widget=FilteredSelectMultiple("operators", is_stacked=False),
        help_text="They watch this market on the dashboard and manage it here (made staff).",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            ids = [int(s.partition(":")[2]) for s in market_operators(self.instance)]
            self.fields["operators"].initial = ids


@admin.register(Market)
class MarketAdmin(OperatorObjectAdmin):
    form = MarketForm
    list_display = ["name", "slug", "width_x_m", "depth_z_m", "height_y_m"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [BoothInline]

    def get_form(self, request: HttpRequest, obj: Market | None = None, **kwargs: Any) -> Any:
        if not request.user.is_superuser:  # operators manage the market, not who runs it
            kwargs["form"] = MarketFieldsForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Market | None = None) -> list[str]:
        fields = list(MarketFieldsForm.Meta.fields)
        return [*fields, "operators"] if request.user.is_superuser else fields

    def save_model(self, request: HttpRequest, obj: Market, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if request.user.is_superuser and "operators" in form.cleaned_data:
            market_operators_set(market=obj, users=list(form.cleaned_data["operators"]))

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        super().save_formset(request, form, formset, change)
        changed = [booth for booth, _ in formset.changed_objects]
        for booth in [*formset.new_objects, *changed]:
            if isinstance(booth, Booth):
                booth_creator_set(booth=booth, user=booth.creator)


class CreatorForm(forms.Form):
    creator = forms.ModelChoiceField(queryset=get_user_model().objects.order_by("username"))


@admin.register(Booth)
class BoothAdmin(OperatorObjectAdmin):
    market_lookup = "market"
    list_display = ["name", "market", "zone_index", "colour", "creator"]
    list_filter = ["market"]
    search_fields = ["name"]
    actions = ["make_creator"]

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "market" and not request.user.is_superuser:
            kwargs["queryset"] = Market.objects.filter(pk__in=markets_operated(request.user))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Booth, form: Any, change: bool) -> None:
        creator = obj.creator
        super().save_model(request, obj, form, change)
        booth_creator_set(booth=obj, user=creator)

    @admin.action(description="Make a user the creator of the selected booths")
    def make_creator(self, request: HttpRequest, queryset: QuerySet[Booth]) -> Any:
        form = CreatorForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            creator = form.cleaned_data["creator"]
            for booth in queryset:
                booth_creator_set(booth=booth, user=creator)
            names = ", ".join(booth.name for booth in queryset)
            self.message_user(request, f"{creator} now creates {names}.", messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Make a user the creator of these booths",
            "opts": self.model._meta,
            "booths": queryset,
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/market/booth/make_creator.html", context)


@admin.register(RelationTuple)
class RelationTupleAdmin(admin.ModelAdmin):
    """Tuples are listed and may be deleted here; they are written through market.rebac.services,
    which checks each one against the market's model."""

    list_display = [
        "object_type",
        "object_id",
        "relation",
        "subject_type",
        "subject_id",
        "subject_relation",
    ]
    list_filter = ["object_type", "relation", "subject_type"]
    search_fields = ["object_id", "subject_id"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
