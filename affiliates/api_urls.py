from rest_framework.routers import SimpleRouter

from .api import AffiliateViewSet, OfferViewSet

router = SimpleRouter()
router.register("affiliates", AffiliateViewSet)
router.register("offers", OfferViewSet)

urlpatterns = router.urls
