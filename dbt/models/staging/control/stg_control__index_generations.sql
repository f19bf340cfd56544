with

source as (

    select * from {{ source('control', 'index_generations') }}

),

renamed as (

    select
        index as index_name,
        generation,
        alias as read_alias,
        state,
        text_model,
        image_model,
        text_dim,
        image_dim,
        validation,
        validation_run_id,
        created_at,
        loaded_at,
        validated_at,
        live_at,
        retired_at,
        deleted_at,
        updated_at

    from source

)

select * from renamed
