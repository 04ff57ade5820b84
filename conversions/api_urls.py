from rest_framework.routers import SimpleRouter

from .api import ConversionViewSet

router = SimpleRouter()
router.register("conversions", ConversionViewSet, basename="conversion")

urlpatterns = router.urls
