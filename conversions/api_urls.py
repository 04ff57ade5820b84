from rest_framework.routers import SimpleRouter

from .api import ConversionViewSet, ExchangeRateViewSet, PayoutRuleViewSet

router = SimpleRouter()
router.register("conversions", ConversionViewSet, basename="conversion")
router.register("exchange-rates", ExchangeRateViewSet, basename="exchange-rate")
router.register("payout-rules", PayoutRuleViewSet, basename="payout-rule")

urlpatterns = router.urls
