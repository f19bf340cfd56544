with

source as (

    select * from {{ source('control', 'erasure_requests') }}

),

renamed as (

    -- subject_id (personal data) is left in the lake on purpose
    select
        request_id,
        subject_type,
        subject_hash,
        requested_at,
        status,
        finished_at

    from source

)

select * from renamed
