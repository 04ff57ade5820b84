from django.urls import path
from rest_framework.routers import SimpleRouter

from postbacks.api import DeliveryViewSet, PostbackViewSet
from postbacks.assistant.api import PostbackAssistantView

router = SimpleRouter()
router.register("postbacks", PostbackViewSet)
router.register("deliveries", DeliveryViewSet)

# Before the router: its detail route postbacks/<pk>/ would otherwise take "assistant".
urlpatterns = [
    path("postbacks/assistant/", PostbackAssistantView.as_view(), name="postback-assistant"),
    *router.urls,
]
