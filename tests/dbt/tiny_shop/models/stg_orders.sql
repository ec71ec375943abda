select id as order_id, customer_id, amount, ordered_on
from {{ ref('raw_orders') }}
