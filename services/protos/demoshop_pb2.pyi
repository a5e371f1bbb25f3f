from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Item(_message.Message):
    __slots__ = ("sku", "quantity")
    SKU_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    sku: str
    quantity: int
    def __init__(self, sku: _Optional[str] = ..., quantity: _Optional[int] = ...) -> None: ...

class PlaceOrderRequest(_message.Message):
    __slots__ = ("user", "items", "currency")
    USER_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    user: str
    items: _containers.RepeatedCompositeFieldContainer[Item]
    currency: str
    def __init__(self, user: _Optional[str] = ..., items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., currency: _Optional[str] = ...) -> None: ...

class GetOrderRequest(_message.Message):
    __slots__ = ("order_id",)
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    def __init__(self, order_id: _Optional[str] = ...) -> None: ...

class OrderReply(_message.Message):
    __slots__ = ("order_id", "user", "items", "total_cents", "currency", "payment_id", "recommendations", "recommendations_degraded", "notification_deferred", "payment_deferred")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CENTS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATIONS_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATIONS_DEGRADED_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_DEFERRED_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_DEFERRED_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    user: str
    items: _containers.RepeatedCompositeFieldContainer[Item]
    total_cents: int
    currency: str
    payment_id: str
    recommendations: _containers.RepeatedScalarFieldContainer[str]
    recommendations_degraded: bool
    notification_deferred: bool
    payment_deferred: bool
    def __init__(self, order_id: _Optional[str] = ..., user: _Optional[str] = ..., items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., total_cents: _Optional[int] = ..., currency: _Optional[str] = ..., payment_id: _Optional[str] = ..., recommendations: _Optional[_Iterable[str]] = ..., recommendations_degraded: _Optional[bool] = ..., notification_deferred: _Optional[bool] = ..., payment_deferred: _Optional[bool] = ...) -> None: ...

class ReserveRequest(_message.Message):
    __slots__ = ("order_id", "items")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    items: _containers.RepeatedCompositeFieldContainer[Item]
    def __init__(self, order_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ...) -> None: ...

class ReserveReply(_message.Message):
    __slots__ = ("reservation_id", "total_cents", "instance_id")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CENTS_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    total_cents: int
    instance_id: str
    def __init__(self, reservation_id: _Optional[str] = ..., total_cents: _Optional[int] = ..., instance_id: _Optional[str] = ...) -> None: ...

class ReleaseRequest(_message.Message):
    __slots__ = ("order_id", "items")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    items: _containers.RepeatedCompositeFieldContainer[Item]
    def __init__(self, order_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ...) -> None: ...

class ReleaseReply(_message.Message):
    __slots__ = ("released", "instance_id", "units")
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    released: bool
    instance_id: str
    units: int
    def __init__(self, released: _Optional[bool] = ..., instance_id: _Optional[str] = ..., units: _Optional[int] = ...) -> None: ...

class GetStockRequest(_message.Message):
    __slots__ = ("sku",)
    SKU_FIELD_NUMBER: _ClassVar[int]
    sku: str
    def __init__(self, sku: _Optional[str] = ...) -> None: ...

class StockReply(_message.Message):
    __slots__ = ("sku", "available", "price_cents")
    SKU_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    PRICE_CENTS_FIELD_NUMBER: _ClassVar[int]
    sku: str
    available: int
    price_cents: int
    def __init__(self, sku: _Optional[str] = ..., available: _Optional[int] = ..., price_cents: _Optional[int] = ...) -> None: ...

class ChargeRequest(_message.Message):
    __slots__ = ("order_id", "user", "amount_cents", "currency")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CENTS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    user: str
    amount_cents: int
    currency: str
    def __init__(self, order_id: _Optional[str] = ..., user: _Optional[str] = ..., amount_cents: _Optional[int] = ..., currency: _Optional[str] = ...) -> None: ...

class ChargeReply(_message.Message):
    __slots__ = ("payment_id",)
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    def __init__(self, payment_id: _Optional[str] = ...) -> None: ...

class RecommendRequest(_message.Message):
    __slots__ = ("user", "skus", "limit")
    USER_FIELD_NUMBER: _ClassVar[int]
    SKUS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    user: str
    skus: _containers.RepeatedScalarFieldContainer[str]
    limit: int
    def __init__(self, user: _Optional[str] = ..., skus: _Optional[_Iterable[str]] = ..., limit: _Optional[int] = ...) -> None: ...

class RecommendReply(_message.Message):
    __slots__ = ("skus",)
    SKUS_FIELD_NUMBER: _ClassVar[int]
    skus: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, skus: _Optional[_Iterable[str]] = ...) -> None: ...

class NotifyRequest(_message.Message):
    __slots__ = ("user", "order_id", "channel")
    USER_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    user: str
    order_id: str
    channel: str
    def __init__(self, user: _Optional[str] = ..., order_id: _Optional[str] = ..., channel: _Optional[str] = ...) -> None: ...

class NotifyReply(_message.Message):
    __slots__ = ("queued",)
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    queued: bool
    def __init__(self, queued: _Optional[bool] = ...) -> None: ...
