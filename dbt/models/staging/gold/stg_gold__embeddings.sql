with

source as (

    select * from {{ source('gold', 'embeddings') }}

),

renamed as (

    select
        {{ surrogate_key(['listing_id', 'modality', 'model_version', 'content_hash']) }} as embedding_id,
        listing_id,
        modality,
        model_version,
        content_hash,
        dim,
        embedded_at,
        batch_id as index_batch_id

    from source

)

select * from renamed
