"""API for the postback assistant: POST a pasted postback URL, get the analysis back, and
optionally create the proposed postback (once: a second call returns the existing one)."""

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from affiliates.models import CLICK_FIELDS, DEFAULT_CLICK_FIELD, Affiliate, Offer
from conversions.models import ConversionType
from postbacks import audit
from postbacks.assistant.analysis import analyse
from postbacks.assistant.catalog import platform_choices
from postbacks.assistant.create import create_postback, existing_postback, refusals
from postbacks.models import AuditSource, TrackingSettings
from trackdesk.permissions import requires


class AssistantRequestSerializer(serializers.Serializer):
    url = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=True,
        help_text="The postback URL the affiliate's platform gave them, as pasted.",
    )
    platform = serializers.ChoiceField(
        choices=platform_choices(),
        required=False,
        allow_blank=True,
        help_text="A catalog platform key; blank: recognise it from the URL. With no URL, the "
        "platform's example shape is analysed.",
    )
    affiliate = serializers.PrimaryKeyRelatedField(
        queryset=Affiliate.objects.all(),
        required=False,
        allow_null=True,
        help_text="Affiliate id: fills in the tracking link and uses their saved click-id token.",
    )
    offer = serializers.PrimaryKeyRelatedField(
        queryset=Offer.objects.all(),
        required=False,
        allow_null=True,
        help_text="Offer id for the tracking link.",
    )
    click_field = serializers.ChoiceField(
        choices=CLICK_FIELDS,
        default=DEFAULT_CLICK_FIELD,
        help_text="The affS field that carries the platform's click id.",
    )
    keep = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        max_length=100,
        help_text="Parameter names to send exactly as pasted: your answer where the analysis "
        "cannot tell a token from a fixed value.",
    )
    create = serializers.BooleanField(
        default=False,
        help_text="Create the proposed postback (inactive) when the analysis is ok; needs "
        "affiliate. If the affiliate already has it, that one is returned instead (200).",
    )

    def validate(self, attrs):
        if not attrs.get("url") and not attrs.get("platform"):
            raise serializers.ValidationError(
                {"url": "Paste the postback URL, or name a platform."}
            )
        if attrs.get("create") and not attrs.get("affiliate"):
            raise serializers.ValidationError({"affiliate": "Name the affiliate to create for."})
        return attrs


class MappingSerializer(serializers.Serializer):
    parameter = serializers.CharField(help_text="The parameter (or path token) as pasted.")
    value = serializers.CharField(help_text="Its pasted value, decoded.")
    placeholder = serializers.CharField(allow_null=True, help_text="Our placeholder, or null.")
    state = serializers.ChoiceField(
        choices=["mapped", "kept", "unmapped", "dropped"],
        help_text="mapped: filled by a placeholder; kept: a fixed value sent as pasted; "
        "unmapped: could not map, sent literally; dropped: left out (repeated).",
    )
    explanation = serializers.CharField(help_text="One line saying why.")
    location = serializers.ChoiceField(choices=["query", "path"])


class ProposedPostbackSerializer(serializers.Serializer):
    name = serializers.CharField()
    url = serializers.CharField(help_text="The URL template with our placeholders.")
    method = serializers.CharField()
    statuses = serializers.ListField(child=serializers.CharField())
    conversion_types = serializers.ListField(child=serializers.CharField())
    status_map = serializers.DictField(child=serializers.CharField())


class SavedPostbackSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    url = serializers.CharField()
    method = serializers.CharField()
    active = serializers.BooleanField()


class PostbackAnalysisSerializer(serializers.Serializer):
    url = serializers.CharField()
    platform = serializers.CharField(allow_null=True, help_text="Catalog key; null: generic.")
    platform_name = serializers.CharField()
    recognised_by = serializers.CharField(help_text="host ..., path ..., parameters ..., chosen.")
    ok = serializers.BooleanField(help_text="True when the proposal can be created as it is.")
    click_id_token = serializers.CharField()
    # The response keeps its original name for the click field, so API clients keep working.
    click_id_field = serializers.CharField(source="click_field")
    tracking_link = serializers.CharField(
        help_text="Our tracking link (a path) with the click-id token in click_id_field."
    )
    mappings = MappingSerializer(many=True)
    problems = serializers.ListField(child=serializers.CharField())
    notes = serializers.ListField(child=serializers.CharField())
    postback = ProposedPostbackSerializer(
        allow_null=True, help_text="The proposed postback; empty when the URL is unreadable."
    )
    existing_postback = SavedPostbackSerializer(
        allow_null=True,
        help_text="The affiliate's postback that already sends this proposal (same URL and "
        "method), or null; with create, the one created.",
    )
    created = serializers.BooleanField(
        help_text="True when this call created the postback; false when it did not (not "
        "asked, not ok, or the affiliate already had it)."
    )


class PostbackAssistantView(APIView):
    # Like the assistant's admin page: its answer is a postback to create (docs/api.md).
    permission_classes = [requires("postbacks.add_postback")]

    @extend_schema(
        operation_id="postbacks_assistant",
        tags=["postbacks"],
        summary="Analyse a pasted postback URL",
        description="Recognises the platform (or the generic shape), maps each parameter to our "
        "placeholders with a one-line explanation, flags what it could not map, and proposes "
        "the tracking link and the postback. Odd URLs give problems, not errors. With create, "
        "saves the proposal (inactive) once: 201 when created, 200 with existing_postback when "
        "the affiliate already has it, 422 with the problems when the analysis is not ok.",
        request=AssistantRequestSerializer,
        responses={
            200: PostbackAnalysisSerializer,
            201: PostbackAnalysisSerializer,
            422: PostbackAnalysisSerializer,
        },
        examples=[
            OpenApiExample(
                "Pasted URL",
                value={"url": "https://trk.example.com/postback?clickid=REPLACE&payout=OPTIONAL"},
                request_only=True,
            )
        ],
    )
    def post(self, request):
        params = AssistantRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        analysis = analyse(
            data.get("url"),
            data.get("platform"),
            affiliate=data.get("affiliate"),
            offer=data.get("offer"),
            click_field=data["click_field"],
            allow_revenue=TrackingSettings.load().allow_revenue_parameters,
            conversion_types=ConversionType.objects.values_list("code", flat=True),
            keep=data.get("keep", ()),
        )
        affiliate = data.get("affiliate")
        saved, created = existing_postback(affiliate, analysis.postback), False
        answer = status.HTTP_200_OK
        if data["create"] and saved is None:
            if analysis.ok:
                saved, created = _create(analysis, affiliate)
            if created:
                audit.record(saved, {}, user=request.user, source=AuditSource.ASSISTANT)
                answer = status.HTTP_201_CREATED
            elif saved is None:
                answer = status.HTTP_422_UNPROCESSABLE_ENTITY
        body = analysis.to_dict()
        body["postback"] = body["postback"] or None
        body["existing_postback"] = saved
        body["created"] = created
        return Response(PostbackAnalysisSerializer(body).data, status=answer)


def _create(analysis, affiliate):
    """The proposal saved as it stands (its statuses and the conversion types the platform
    counts, global scope, the conversion's currency: what the admin page presets), after the
    postback form's checks; a refusal becomes problems and (None, False)."""
    proposal = analysis.postback
    types = ConversionType.objects.filter(code__in=proposal["conversion_types"])
    problems = refusals(analysis, conversion_types=types, statuses=proposal["statuses"])
    if problems:
        analysis.problems += problems
        return None, False
    return create_postback(
        analysis,
        affiliate,
        name=proposal["name"],
        conversion_types=types,
        statuses=proposal["statuses"],
    )
