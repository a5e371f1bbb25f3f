"""The demo shop's products: SKU -> price in cents. Shared by inventory, recommendation and the
load generator, so every SKU the load generator asks for exists."""

CATALOG: dict[str, int] = {
    "sku-espresso": 350,
    "sku-grinder": 12900,
    "sku-kettle": 4500,
    "sku-mug": 1200,
    "sku-beans-1kg": 2400,
    "sku-filter-papers": 450,
    "sku-scale": 3900,
    "sku-dripper": 2900,
    "sku-milk-frother": 5900,
    "sku-tamper": 1900,
}
