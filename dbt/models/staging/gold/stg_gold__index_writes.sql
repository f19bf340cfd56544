with

source as (

    select * from {{ source('gold', 'index_log') }}

),

renamed as (

    select
        {{ surrogate_key(['listing_id', 'index', 'batch_id', 'action', 'indexed_at']) }} as index_write_id,
        listing_id,
        target as target_alias,
        index as index_name,
        action,
        version as listing_version,
        outcome,
        status as http_status,
        error,
        text_model,
        image_model,
        text_hash,
        image_hash,
        event_ts,
        indexed_at,
        batch_id as index_batch_id

    from source

)

select * from renamed
