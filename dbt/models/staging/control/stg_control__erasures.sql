with

source as (

    select * from {{ source('control', 'erasure_log') }}

),

renamed as (

    select
        {{ surrogate_key(['request_id', 'store', 'started_at']) }} as erasure_id,
        request_id,
        subject_type,
        subject_hash,
        store,
        erased as erased_count,
        started_at,
        finished_at

    from source

)

select * from renamed
