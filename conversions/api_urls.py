from rest_framework.routers import SimpleRouter

from .api import ConversionViewSet, ExchangeRateViewSet

router = SimpleRouter()
router.register("conversions", ConversionViewSet, basename="conversion")
router.register("exchange-rates", ExchangeRateViewSet, basename="exchange-rate")

urlpatterns = router.urls
